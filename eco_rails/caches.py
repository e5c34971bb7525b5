"""Process-wide caches (loaded engines, rail runtimes, registered corruptions) and one hook to reset them.

Each module that keeps a cache registers its clear function here; :func:`reset_caches` clears them all
(tests use it between cases that must not share state; a long-lived process can use it to free models).
"""

from __future__ import annotations

from typing import Callable

_CLEARERS: dict[str, Callable[[], None]] = {}


def register_cache(name: str, clear: Callable[[], None]) -> None:
    """Register ``clear`` under ``name`` (registering a name again replaces it)."""
    _CLEARERS[name] = clear


def reset_caches(*names: str) -> list[str]:
    """Clear the named caches (all of them when none is named); returns the names cleared."""
    chosen = names or tuple(_CLEARERS)
    unknown = [n for n in chosen if n not in _CLEARERS]
    if unknown:
        raise KeyError(f"Unknown cache(s) {unknown}; registered: {sorted(_CLEARERS)}")
    for name in chosen:
        _CLEARERS[name]()
    return list(chosen)
