"""A config that eco-rails refuses, under NeMo's own command line: the reason, not a 60-line traceback.

``nemoguardrails chat`` builds ``LLMRails`` without catching what it raises, so an error that eco-rails raises
at load time (a policy typo, an unknown ``custom_data.eco`` key, a model path that is not a model) reaches the
interpreter, which prints every frame of Typer, asyncio and NeMo, with the one useful message buried in the
middle of a chain. When, and only when, the running program is NeMo's CLI, eco-rails installs an excepthook
that prints that message alone (it already names the file, the field and the fix) and exits with status 1.
Every other exception goes to the hook that was there before. ``ECO_RAILS_TRACEBACK=1`` keeps the traceback.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Callable, Optional, Sequence

from eco_rails.errors import EcoRailsError

ExceptHook = Callable[[type[BaseException], BaseException, Optional[TracebackType]], object]

TRACEBACK_ENV = "ECO_RAILS_TRACEBACK"


def eco_error_in(exc: BaseException) -> Optional[EcoRailsError]:
    """The first eco-rails error in ``exc``'s chain of causes and contexts (cycles and depth bounded)."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen and len(seen) < 64:
        if isinstance(current, EcoRailsError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def short_message(error: EcoRailsError) -> str:
    """What the person running the config reads instead of the traceback."""
    return (f"eco-rails: this rails config cannot start.\n\n{error}\n\n"
            f"(Set {TRACEBACK_ENV}=1 to see the full traceback.)\n")


def short_hook(previous: ExceptHook) -> ExceptHook:
    """An excepthook that shortens eco-rails errors and hands everything else to ``previous``."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: Optional[TracebackType]) -> None:
        error = eco_error_in(exc)
        if error is None or os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
            previous(exc_type, exc, tb)
            return
        sys.stderr.write(short_message(error))
        sys.stderr.flush()

    hook.eco_rails_short_errors = True  # type: ignore[attr-defined]
    return hook


def running_nemo_cli(argv: Sequence[str]) -> bool:
    """True for ``nemoguardrails ...`` and ``python -m nemoguardrails ...``."""
    if not argv:
        return False
    program = argv[0].replace("\\", "/")
    return os.path.basename(program) in ("nemoguardrails", "nemoguardrails.exe") or program.endswith("nemoguardrails/__main__.py")


def install_for_nemo_cli(argv: Optional[Sequence[str]] = None) -> bool:
    """Install :func:`short_hook` when this process is NeMo's CLI (once); returns whether it is installed.
    Library users and servers keep Python's tracebacks: servers catch their errors, and a script's author
    wants the frames."""
    if not running_nemo_cli(sys.argv if argv is None else argv):
        return False
    if not getattr(sys.excepthook, "eco_rails_short_errors", False):
        sys.excepthook = short_hook(sys.excepthook)
    return True
