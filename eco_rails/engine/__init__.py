"""The engine: a local causal LM that corrupts flagged prompt tokens before generating.

Framework-free (no NeMo, no LangChain, no policies): the providers adapt it to NeMo Guardrails and
LangChain. Modules: ``corruption/`` (the registry, the validated setting and the pure torch functions),
``flags`` (what to corrupt), ``prompting`` (chat templates and token-exact spans), ``model_store`` (the
embedded model and local model loading) and ``generation`` (:class:`EcoEngine`).

Importing this package loads no torch; the names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EcoEngine": "generation", "GenerationFields": "generation", "GenerationResult": "generation",
    "GenerationSettings": "generation", "StreamUsage": "generation", "get_engine": "generation",
    "FlagDecision": "flags", "FlagDecider": "flags", "RailCorruption": "flags",
    "CorruptionSpec": "corruption", "register_corruption_method": "corruption",
    "EMBEDDED_MODEL": "model_store",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
