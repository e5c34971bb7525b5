"""`eco-rails bench` argument errors: clear messages, exit code 1, before any model or benchmark runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eco_rails.cli", "bench", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    run = bench("--quick", "--only", "provider", "--random-model", "tiny", "--device", "cuda")
    assert run.returncode == 1 and "CUDA is not available" in run.stderr


def test_bad_bench_arguments_are_clear_errors(tmp_path):
    run = bench("--only", "speed", "--config", str(tmp_path))
    assert run.returncode == 1 and "unknown section" in run.stderr
    run = bench("--quick", "--config", str(tmp_path), "--only", "classifier")
    assert run.returncode == 1 and "not a rails config folder" in run.stderr
    run = bench("--quick", "--json", str(tmp_path / "out.txt"))
    assert run.returncode == 1 and "ending in .json" in run.stderr
    run = bench("--quick", "--only", "provider", "--random-model", "7b")
    assert run.returncode == 1 and "llama-1b" in run.stderr
    assert not (tmp_path / "out.txt").exists()
