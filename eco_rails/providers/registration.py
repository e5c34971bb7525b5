"""Register ``engine: eco`` with NeMo Guardrails as soon as NeMo is imported, without importing it first.

``import eco_rails`` must keep registering the engine (that is how users enable it), but importing
eco-rails must not load NeMo Guardrails (or torch) for users who only edit policies or run the CLI's
``--help``. So: if NeMo is already imported, register now; otherwise wait for it with a one-shot import
hook that registers right after the ``nemoguardrails`` package has finished importing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from types import ModuleType
from typing import Any, Sequence

log = logging.getLogger(__name__)

_NEMO = "nemoguardrails"
_lock = threading.Lock()


def _register() -> None:
    from eco_rails.providers.nemo import register_nemo_provider

    register_nemo_provider()


class _RegisterAfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``nemoguardrails`` through the other finders and registers the engine once it has executed."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> Any:
        if fullname != _NEMO:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Wrapped(spec.loader)
                return spec
        return None


class _Wrapped(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        uninstall()
        try:
            _register()
        except Exception:  # never break `import nemoguardrails`; config.py registers again at load time
            log.warning("eco-rails could not register engine 'eco' with NeMo Guardrails", exc_info=True)

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self._loader, name)


_HOOK: _RegisterAfterImport | None = None


def install() -> None:
    """Register now if NeMo Guardrails is imported, else once it is (idempotent)."""
    global _HOOK
    with _lock:
        if _NEMO in sys.modules:
            _register()
            return
        if _HOOK is None:
            _HOOK = _RegisterAfterImport()
            sys.meta_path.insert(0, _HOOK)


def uninstall() -> None:
    """Remove the pending hook (if any)."""
    global _HOOK
    hook, _HOOK = _HOOK, None
    if hook is not None and hook in sys.meta_path:
        sys.meta_path.remove(hook)
