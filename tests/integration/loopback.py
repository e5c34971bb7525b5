"""Start a real server process on 127.0.0.1 for a test module, wait until it answers, and stop it after."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

# A hang guard, not a speed target: a server that never starts would otherwise hang the suite for ever, and a
# loaded 2-core machine can take minutes to load models.
HANG_GUARD_S = 1800


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(command: list[str], port: int, ready_path: str, log_path: Path, **popen: Any) -> Iterator[tuple[str, Any]]:
    """Run ``command`` (which listens on ``port``) until ``GET ready_path`` answers JSON; yield (base URL, that JSON)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **popen)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + HANG_GUARD_S
        try:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"{command[2:4]} exited: {log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{base}{ready_path}", timeout=5) as response:
                        ready = json.loads(response.read())
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"{command[2:4]} did not start in {HANG_GUARD_S} s: {log_path.read_text()[-3000:]}")
                    time.sleep(1)
            yield base, ready
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
