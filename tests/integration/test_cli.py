"""The eco-rails command line, run as a user would run it, chatting with the real model.

(Paths that load no model are in tests/unit/test_cli.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Only for the chats that read turns from stdin: they must end at end of input, and a REPL that waits for
# more would hang the suite for ever. Generous, so that a loaded machine never fails on it.
REPL_HANG_GUARD_S = 1800


def run_cli(*args: str, stdin: str = "", timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eco_rails.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env={**os.environ})


def test_one_shot_chat_clean_and_flagged():
    clean = run_cli("chat", "--message", "Who wrote the Harry Potter books?", "--max-new-tokens", "24")
    assert clean.returncode == 0, clean.stderr
    assert "Rowling" in clean.stdout
    flagged = run_cli("chat", "--flag", "--message", "Who wrote the Harry Potter books?", "--max-new-tokens", "24")
    assert flagged.returncode == 0 and "Rowling" not in flagged.stdout and flagged.stdout.strip()


def test_chat_through_a_rails_config_reads_turns_from_stdin():
    out = run_cli("chat", "--config", str(REPO / "rails_configs" / "smollm2_plain"), stdin="What is the capital of France?\n",
                  timeout=REPL_HANG_GUARD_S)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Paris" in out.stdout


def test_chat_through_the_harry_potter_rails_config(hp_artifact):
    config = str(REPO / "rails_configs" / "harry_potter")
    out = run_cli("chat", "--config", config, "--no-stream", stdin="Who wrote the Harry Potter books?\nWhat is the capital of France?\n",
                  timeout=REPL_HANG_GUARD_S)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert "Rowling" not in lines[0] and "Paris" in out.stdout


def test_nemoguardrails_own_chat_cli_runs_the_harry_potter_config(hp_artifact):
    """NeMo Guardrails' `nemoguardrails chat`, fed two turns on stdin (it ends with "Aborted." at end of input)."""
    cli = Path(sys.executable).parent / "nemoguardrails"
    out = subprocess.run([str(cli), "chat", "--config", str(REPO / "rails_configs" / "harry_potter")],
                         input="What is the capital of France?\nWho wrote the Harry Potter books?\n",
                         capture_output=True, text=True, timeout=REPL_HANG_GUARD_S, cwd=REPO)
    answers = [a.strip() for a in out.stdout.split("\n> ")[1:]]
    assert len(answers) >= 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Paris" in answers[0]
    assert "Rowling" not in answers[1] and "Traceback" not in out.stderr
