"""One formatter for pydantic validation errors, used at every boundary (policy files, rails configs,
provider parameters, call parameters): one line per error, ``<dotted field path>: <what> (got <value>); <fix>``."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping, Sequence

from pydantic import BaseModel, ValidationError

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


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas ``node`` may stand for ($ref followed, anyOf/oneOf/allOf unfolded)."""
    if "$ref" in node:
        return _resolve(schema, schema.get("$defs", {}).get(node["$ref"].rsplit("/", 1)[-1], {}))
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            return [out for option in node[key] for out in _resolve(schema, option)]
    return [node]


def keys_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The keys a mapping may have at ``loc`` inside ``model`` (from its JSON schema; [] when unknown)."""
    schema = model.model_json_schema()
    nodes = _resolve(schema, schema)
    for part in loc:
        step = []
        for node in nodes:
            if isinstance(part, int) and "items" in node:
                step += _resolve(schema, node["items"])
            elif isinstance(part, str) and part in node.get("properties", {}):
                step += _resolve(schema, node["properties"][part])
            elif isinstance(part, str) and isinstance(node.get("additionalProperties"), dict):
                step += _resolve(schema, node["additionalProperties"])
        nodes = step
    return sorted({key for node in nodes for key in node.get("properties", {})})


def unknown_key_fix(model: type[BaseModel], loc: Sequence[Any]) -> str | None:
    """For an unknown key: the nearest valid key (a typo such as ``key_term``) and the list of valid ones."""
    valid = keys_at(model, loc[:-1])
    if not valid:
        return None
    near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    listed = ", ".join(valid)
    return (f"did you mean `{near[0]}`? " if near else "remove it or check its spelling; ") + f"valid keys here: {listed}"


def error_lines(exc: ValidationError, prefix: str = "", *, hint: Hint | None = None,
                fixes: Mapping[str, str] | None = None, model: type[BaseModel] | None = None) -> list[str]:
    """One readable line per error. ``prefix`` is the dotted path of the validated object
    (``custom_data.eco``, ``models[].parameters``); ``hint`` may return a fix for a particular error;
    with ``model`` (the validated class) an unknown key gets the nearest valid key and the list of valid ones."""
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
        fix = (hint(err) if hint else None) or (
            unknown_key_fix(model, err["loc"]) if model is not None and err["type"] == "extra_forbidden" else None
        ) or table.get(err["type"], "")
        lines.append(f"{path}: {msg}{shown}" + (f"; {fix}" if fix else ""))
    return lines


def format_validation_error(exc: ValidationError, prefix: str = "", *, title: str = "Invalid configuration",
                            hint: Hint | None = None, fixes: Mapping[str, str] | None = None,
                            model: type[BaseModel] | None = None) -> str:
    """``title:`` followed by :func:`error_lines`, indented: the text of a :class:`ConfigError`."""
    return f"{title}:\n  " + "\n  ".join(error_lines(exc, prefix, hint=hint, fixes=fixes, model=model))
