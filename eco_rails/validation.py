"""One formatter for pydantic validation errors, used at every boundary (policy files, rails configs,
provider parameters, call parameters): one line per error, ``<dotted field path>: <what> (got <value>); <fix>``."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from pydantic import ValidationError

# Generic fixes by pydantic error type; a caller can add its own (``fixes=``) for its fields.
FIXES: dict[str, str] = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "too_short": "add at least one entry",
    "string_too_short": "write some text",
    "string_pattern_mismatch": "use lowercase letters, digits, '-' and '_'",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
}

Hint = Callable[[Any], str | None]


def error_lines(exc: ValidationError, prefix: str = "", *, hint: Hint | None = None,
                fixes: Mapping[str, str] | None = None) -> list[str]:
    """One readable line per error. ``prefix`` is the dotted path of the validated object
    (``custom_data.eco``, ``models[].parameters``); ``hint`` may return a fix for a particular error."""
    table = {**FIXES, **(fixes or {})}
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in (prefix, *err["loc"]) if str(part)) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        if err["type"] == "missing" or (isinstance(got, dict) and len(str(got)) > 120):
            shown = ""
        else:
            text = repr(got[:80]) if isinstance(got, str) else repr(got)
            shown = f" (got {text if len(text) <= 100 else text[:97] + '...'})"
        fix = (hint(err) if hint else None) or table.get(err["type"], "")
        lines.append(f"{path}: {msg}{shown}" + (f"; {fix}" if fix else ""))
    return lines


def format_validation_error(exc: ValidationError, prefix: str = "", *, title: str = "Invalid configuration",
                            hint: Hint | None = None, fixes: Mapping[str, str] | None = None) -> str:
    """``title:`` followed by :func:`error_lines`, indented: the text of a :class:`ConfigError`."""
    return f"{title}:\n  " + "\n  ".join(error_lines(exc, prefix, hint=hint, fixes=fixes))
