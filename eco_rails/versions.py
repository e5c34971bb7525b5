"""Installed package versions, recorded in artifacts and reports so a number can be traced to its stack."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Iterable


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: version}`` for each installed package among ``names``; absent ones are left out."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
