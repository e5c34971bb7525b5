"""eco-rails: Embedding-COrrupted (ECO) prompts for NVIDIA NeMo Guardrails.

``import eco_rails`` registers the ``eco`` engine with NeMo Guardrails, so a rails config can declare
``models: [{type: main, engine: eco, model: smollm2-135m}]``.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from eco_rails.corruptions import CorruptionSpec, apply_corruption
from eco_rails.engine import EcoEngine, GenerationResult, GenerationSettings, get_engine
from eco_rails.errors import ConfigError, EcoRailsError, ModelLoadError, PromptError, SpanNotFoundError
from eco_rails.flags import FlagDecider, FlagDecision
from eco_rails.model_store import EMBEDDED_MODEL
from eco_rails.nemo_provider import EcoLLM, register_nemo_provider

try:
    __version__ = version("eco-rails")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    # LangChain's chat model pulls in langchain-core; import it only when asked for.
    if name == "EcoChatModel":
        from eco_rails.langchain_chat import EcoChatModel

        return EcoChatModel
    if name in {"PromptClassifier", "ClassifierDecision"}:
        from eco_rails import classifier

        return getattr(classifier, name)
    if name in {"ForgetPolicy", "load_policy"}:
        from eco_rails import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'eco_rails' has no attribute {name!r}")


__all__ = [
    "ClassifierDecision", "CorruptionSpec", "ConfigError", "ForgetPolicy", "PromptClassifier", "load_policy", "EMBEDDED_MODEL", "EcoChatModel", "EcoEngine", "EcoLLM", "EcoRailsError",
    "FlagDecider", "FlagDecision", "GenerationResult", "GenerationSettings", "ModelLoadError", "PromptError",
    "SpanNotFoundError", "apply_corruption", "get_engine", "register_nemo_provider", "__version__",
]

register_nemo_provider()
