"""Under NeMo's CLI a config error is shown as its message; everything else keeps its traceback."""

from __future__ import annotations

import sys

import pytest

from eco_rails.errors import ConfigError
from eco_rails.providers.short_errors import eco_error_in, install_for_nemo_cli, running_nemo_cli, short_hook


def chained() -> RuntimeError:
    try:
        try:
            raise ConfigError("Invalid forget policy p.yml: targets.0.key_term ... did you mean `key_terms`?")
        except ConfigError as exc:
            raise RuntimeError("Failed to initialize configuration module") from exc
    except RuntimeError as outer:
        return outer


def test_the_eco_error_is_found_anywhere_in_the_chain_and_cycles_end():
    assert isinstance(eco_error_in(chained()), ConfigError)
    loop = ValueError("a")
    loop.__context__ = ValueError("b")
    loop.__context__.__context__ = loop
    assert eco_error_in(loop) is None


def test_the_hook_prints_the_reason_alone_and_passes_other_errors_on(capsys, monkeypatch):
    monkeypatch.delenv("ECO_RAILS_TRACEBACK", raising=False)
    passed = []
    hook = short_hook(lambda *args: passed.append(args[1]))
    exc = chained()
    hook(type(exc), exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "did you mean `key_terms`" in err and "Failed to initialize" not in err and "ECO_RAILS_TRACEBACK=1" in err
    assert passed == []
    other = KeyError("x")
    hook(KeyError, other, None)
    assert passed == [other] and capsys.readouterr().err == ""
    monkeypatch.setenv("ECO_RAILS_TRACEBACK", "1")
    hook(type(exc), exc, None)
    assert passed == [other, exc]


@pytest.mark.parametrize("argv, expected", [
    (["/venv/bin/nemoguardrails", "chat"], True),
    (["/venv/lib/python3.11/site-packages/nemoguardrails/__main__.py", "chat"], True),
    (["/venv/bin/eco-rails", "chat"], False),
    (["-c"], False),
    ([], False),
])
def test_only_nemos_cli_is_recognised(argv, expected):
    assert running_nemo_cli(argv) is expected


def test_install_is_once_and_only_under_nemos_cli(monkeypatch):
    original = sys.excepthook
    monkeypatch.setattr(sys, "excepthook", original)
    assert install_for_nemo_cli(["pytest"]) is False and sys.excepthook is original
    assert install_for_nemo_cli(["/x/nemoguardrails"]) is True
    first = sys.excepthook
    assert first is not original
    install_for_nemo_cli(["/x/nemoguardrails"])
    assert sys.excepthook is first
