"""One progress-bar setup for every long job (fit, strength search, evaluation, benchmarks).

Bars go to stderr, so stdout keeps only results (tables, reports) and piping stdout never captures a bar.
:class:`ProgressSink` is what library code takes: ``task(description, total)`` returns an ``advance(n)``
function; the silent sink (the default) does nothing, so library calls stay quiet unless asked.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Protocol

Advance = Callable[..., None]  # advance(n=1, description=None)


class ProgressSink(Protocol):
    def task(self, description: str, total: int | None) -> Advance: ...


class SilentProgress:
    """Reports nothing."""

    def task(self, description: str, total: int | None) -> Advance:
        return lambda n=1, description=None: None


class RichProgress:
    """Rich bars on stderr (a live display on a terminal, plain lines otherwise)."""

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
    """A running :class:`RichProgress` when ``show``, else a :class:`SilentProgress`."""
    if not show:
        yield SilentProgress()
        return
    sink = RichProgress(width)
    with sink.bar:
        yield sink
