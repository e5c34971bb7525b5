"""Run README's commands as a new user would and record how long they took: `reports/readme-commands.json`,
which README's timing sentences quote (tests/unit/test_readme_numbers.py checks them against it).

    .venv/bin/python scripts/time-readme-commands.py chat    # README's first command, two questions, `exit`
    .venv/bin/python scripts/time-readme-commands.py ci      # `.ci/run` under CI=true (README's second command, plus lint)

Each run clones the current commit into a fresh folder beside a link to ../shared, with a fresh model cache
(ECO_RAILS_CACHE), so nothing built before is reused. The command is read from README itself (its first
bash block), so the timing is of what README says to type. Takes as long as the command (15 to 45 minutes
on 2 cores); the clone is kept for inspection and its path printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from eco_rails.atomic import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "readme-commands.json"
QUESTIONS = "Who is the headmaster of Hogwarts?\nWhat is the capital of France?\nexit\n"


def readme_command(index: int) -> str:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)
    return blocks[index].strip()


def log_summary(log: str) -> dict:
    """pytest's summary lines (``363 passed in 31.29s``) and the slowest steps of a test run's log."""
    summaries = re.findall(r"^=*\s*(\d+ (?:passed|failed)[^=\n]*?)\s*=*$", log, flags=re.M)
    slowest = sorted(((float(s), t) for s, t in re.findall(r"^(\d+\.\d+)s (?:call|setup|teardown)\s+(\S+)$", log,
                                                          flags=re.M)), reverse=True)
    return {"pytest": summaries, "slowest_s": [[round(s, 1), t] for s, t in slowest[:8]]}


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found.group(1).strip() if found else ""
    return f"{os.cpu_count()} cores, {model or platform.processor() or platform.machine()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["chat", "ci"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout.strip()
    root = Path(tempfile.mkdtemp(prefix=f"eco-rails-{args.which}-"))
    subprocess.run(["git", "clone", "-q", str(REPO), str(root / "main")], check=True)
    (root / "shared").symlink_to((REPO.parent / "shared").resolve())
    env = {**os.environ, "ECO_RAILS_CACHE": str(root / "cache")}
    env.pop("VIRTUAL_ENV", None)
    if args.which == "chat":
        command, stdin = readme_command(0), QUESTIONS
    else:
        command, stdin, env["CI"] = "bash .ci/run", None, "true"
    print(f"running `{command}` in {root / 'main'} (log: {root / 'log.txt'})", flush=True)
    started = time.monotonic()
    with open(root / "log.txt", "w") as log:
        done = subprocess.run(["bash", "-c", command], cwd=root / "main", env=env, input=stdin, text=True,
                              stdout=log, stderr=subprocess.STDOUT)
    seconds = round(time.monotonic() - started, 1)

    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    record[args.which] = {"command": command, "commit": commit, "seconds": seconds, "minutes": round(seconds / 60, 1),
                          "returncode": done.returncode, "machine": machine(),
                          "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                          **log_summary((root / "log.txt").read_text(errors="replace"))}
    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    print(f"{args.which}: rc {done.returncode} in {seconds} s ({seconds / 60:.1f} min); wrote {args.out}")


if __name__ == "__main__":
    main()
