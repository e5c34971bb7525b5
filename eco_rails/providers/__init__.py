"""Providers: the engine behind NeMo Guardrails (``engine: eco``) and LangChain (``EcoChatModel``).

Thin adapters over :class:`~eco_rails.engine.EcoEngine`: ``settings`` (validated ``models[].parameters``),
``markers`` (the signed flags the ECO rail writes into messages, verified and stripped here),
``request`` (one request-resolution step both adapters share: explicit flag > rail markers > decider),
``nemo`` (:class:`EcoLLM`) and ``langchain`` (:class:`EcoChatModel`).

Importing this package loads neither torch, NeMo Guardrails nor LangChain.
"""

from __future__ import annotations

import importlib
from typing import Any

# The engine name under which the providers are registered with NeMo Guardrails.
ECO_ENGINE = "eco"

_EXPORTS = {
    "EcoLLM": "nemo", "register_nemo_provider": "nemo", "EcoChatModel": "langchain", "ProviderSettings": "settings",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ECO_ENGINE", *sorted(_EXPORTS)]
