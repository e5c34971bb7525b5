"""One progress-bar setup for every long job (fit, strength search, evaluation, benchmarks).

Bars go to stderr, so stdout keeps only results (tables, reports) and piping stdout never captures a bar.
:class:`ProgressSink` is what library code takes: ``task(description, total)`` returns an ``advance(n)``
function; the silent sink (the default) does nothing, so library calls stay quiet unless asked.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Any, Callable, Iterator, Protocol

Advance = Callable[..., None]  # advance(n=1, description=None)


class ProgressSink(Protocol):
    def task(self, description: str, total: int | None) -> Advance: ...


class SilentProgress:
    """Reports nothing."""

    def task(self, description: str, total: int | None) -> Advance:
        return lambda n=1, description=None: None


class LineProgress:
    """Plain progress lines for a stderr that is not a terminal (a log file, a pipe, CI).

    Rich draws nothing there until a job ends, so a 14-minute first fit would look hung. This writes one line
    when a task starts, then at most one per ``interval`` seconds while it runs, and one when it completes:
    ``Fine-tuning classifier  28/789  3%  0m30s``.
    """

    def __init__(self, stream: IO[str] | None = None, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.interval, self.clock = stream, interval, clock

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def task(self, description: str, total: int | None) -> Advance:
        state: dict[str, Any] = {"done": 0, "total": total, "description": description, "started": self.clock()}
        state["said"] = state["started"]

        def line() -> str:
            elapsed = int(self.clock() - state["started"])
            count = f"{state['done']}/{state['total']}  {100 * state['done'] // max(state['total'], 1)}%" \
                if state["total"] else f"{state['done']}"
            return f"{state['description']}  {count}  {elapsed // 60}m{elapsed % 60:02d}s"

        self._write(line())

        def advance(n: int = 1, description: str | None = None, total: int | None = None) -> None:
            state["done"] += n
            if description is not None:
                state["description"] = description
            if total is not None:
                state["total"] = total
            finished = state["total"] is not None and state["done"] >= state["total"]
            if finished or self.clock() - state["said"] >= self.interval:
                state["said"] = self.clock()
                self._write(line())

        return advance


class RichProgress:
    """Rich bars on stderr, drawn live (used when stderr is a terminal)."""

    def __init__(self, width: int = 28) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(f"{{task.description:<{width}}}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True))

    def task(self, description: str, total: int | None) -> Advance:
        task_id = self.bar.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None, total: int | None = None) -> None:
            fields: dict[str, Any] = {"advance": n}
            if description is not None:
                fields["description"] = description
            if total is not None:
                fields["total"] = total
            self.bar.update(task_id, **fields)

        return advance


@contextlib.contextmanager
def progress_bars(show: bool, width: int = 28) -> Iterator[ProgressSink]:
    """When ``show``: a running :class:`RichProgress` if stderr is a terminal, else :class:`LineProgress`;
    otherwise a :class:`SilentProgress`."""
    if not show:
        yield SilentProgress()
        return
    if not sys.stderr.isatty():
        yield LineProgress()
        return
    sink = RichProgress(width)
    with sink.bar:
        yield sink
