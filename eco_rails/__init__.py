"""eco-rails: Embedding-COrrupted (ECO) prompts for NVIDIA NeMo Guardrails.

``import eco_rails`` registers the ``eco`` engine with NeMo Guardrails (now if NeMo is imported, else as
soon as it is), so a rails config can declare ``models: [{type: main, engine: eco, model: smollm2-135m}]``.

The package follows the data path, bottom layer first: ``engine`` (the model and the corruption math),
``policy`` (what to forget), ``classifier`` (fit and run the prompt classifier), ``providers`` (NeMo and
LangChain adapters over the engine), ``rails`` (the NeMo input rail and rails-config resolution), then the
tools: ``strength`` (learn the corruption), ``evaluation``, ``bench`` and ``cli``. Lower layers never
import higher ones (checked by import-linter). Importing this package loads neither torch nor NeMo
Guardrails: the names below are imported on first use.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from eco_rails.errors import ConfigError as ConfigError
from eco_rails.errors import EcoRailsError as EcoRailsError
from eco_rails.errors import ModelLoadError as ModelLoadError
from eco_rails.errors import PromptError as PromptError
from eco_rails.errors import SpanNotFoundError as SpanNotFoundError

try:
    __version__ = version("eco-rails")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "CorruptionSpec": "eco_rails.engine.corruption",
    "apply_corruption": "eco_rails.engine.corruption",
    "register_corruption_method": "eco_rails.engine.corruption",
    "EcoEngine": "eco_rails.engine.generation",
    "GenerationResult": "eco_rails.engine.generation",
    "GenerationSettings": "eco_rails.engine.generation",
    "get_engine": "eco_rails.engine.generation",
    "FlagDecider": "eco_rails.engine.flags",
    "FlagDecision": "eco_rails.engine.flags",
    "EMBEDDED_MODEL": "eco_rails.engine.model_store",
    "ForgetPolicy": "eco_rails.policy",
    "load_policy": "eco_rails.policy",
    "PromptClassifier": "eco_rails.classifier.runtime",
    "ClassifierDecision": "eco_rails.classifier.runtime",
    "fit_policy": "eco_rails.classifier.fit",
    "EcoLLM": "eco_rails.providers.nemo",
    "register_nemo_provider": "eco_rails.providers.nemo",
    "EcoChatModel": "eco_rails.providers.langchain",
    "resolve_config": "eco_rails.rails.resolved",
    "evaluate": "eco_rails.evaluation.evaluate",
    "reset_caches": "eco_rails.caches",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'eco_rails' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = sorted({*_EXPORTS, "ConfigError", "EcoRailsError", "ModelLoadError", "PromptError", "SpanNotFoundError",
                  "__version__"})

from eco_rails.providers import registration as _registration  # noqa: E402

_registration.install()
