"""Progress when stderr is not a terminal: plain lines, spaced in time, never silent for a long job."""

from __future__ import annotations

import io

from eco_rails.progress import LineProgress, progress_bars


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_task_says_it_started_then_at_most_once_an_interval_then_that_it_finished():
    stream, clock = io.StringIO(), Clock()
    advance = LineProgress(stream, interval=30, clock=clock).task("classifier: training", 10)
    for step in range(10):
        clock.now = step * 10.0 + 10
        advance()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "classifier: training  0/10  0%  0m00s"
    assert lines[-1] == "classifier: training  10/10  100%  1m40s"
    assert len(lines) == 5  # start, every 30 s (30, 60, 90 s), the end


def test_a_task_without_a_total_and_a_renamed_task_still_report():
    stream, clock = io.StringIO(), Clock()
    advance = LineProgress(stream, interval=0, clock=clock).task("scoring", None)
    advance(3, description="scoring tofu")
    assert stream.getvalue().splitlines() == ["scoring  0  0m00s", "scoring tofu  3  0m00s"]


def test_progress_bars_choose_lines_when_stderr_is_not_a_terminal(capsys):
    with progress_bars(True) as bars:  # pytest captures stderr: not a terminal
        assert isinstance(bars, LineProgress)
        bars.task("fit", 2)(2)
    assert "fit  2/2  100%" in capsys.readouterr().err
