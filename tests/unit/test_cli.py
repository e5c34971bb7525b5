"""The eco-rails command line, run as a user would run it: the paths that load no model.

(Chats with the real model are in tests/integration/test_cli.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eco_rails.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO, env={**os.environ})


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("eco-rails ")
    assert "chat" in run_cli("--help").stdout


def test_bad_inputs_exit_nonzero_with_a_clear_message(tmp_path):
    out = run_cli("chat", "--config", str(tmp_path), "--message", "hi")
    assert out.returncode == 1 and "is not a rails config folder" in out.stderr
    out = run_cli("chat", "--model", str(tmp_path / "missing"), "--message", "hi")
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_benchmark_command_rejects_bad_choices_before_loading_anything(tmp_path):
    out = run_cli("benchmark", "mmlu")
    assert out.returncode == 1 and "tofu, knowundo" in out.stderr
    out = run_cli("benchmark", "tofu", "--quick", "--full")
    assert out.returncode == 1 and "exclude each other" in out.stderr
    out = run_cli("benchmark", "knowundo", "--export-adapter", str(tmp_path / "a"))
    assert out.returncode == 1 and "--export-adapter is for tofu" in out.stderr
    out = run_cli("benchmark", "tofu", "--quick", "--data-dir", str(tmp_path), "--json", str(tmp_path / "r.json"))
    assert out.returncode == 1 and "--data-dir" in out.stderr and not (tmp_path / "r.json").exists()


def test_fit_says_why_it_does_not_search_the_strength():
    from eco_rails.cli.policy import _strength_search_skipped
    from eco_rails.policy import load_policy

    policy = load_policy(REPO / "tests" / "configs" / "wizard_school" / "policy.yml")
    assert policy.corruption.strength == "auto" and policy.optimization.data
    assert _strength_search_skipped(policy, skip_optimize=False) is None
    assert "--skip-optimize" in _strength_search_skipped(policy, skip_optimize=True)
    no_questions = policy.model_copy(update={"optimization": policy.optimization.model_copy(update={"data": None})})
    assert "no optimisation questions (optimization.data)" in _strength_search_skipped(no_questions, skip_optimize=False)
    fixed = policy.model_copy(update={"corruption": policy.corruption.model_copy(update={"strength": 0.3})})
    assert "fixes corruption.strength at 0.3" in _strength_search_skipped(fixed, skip_optimize=False)
