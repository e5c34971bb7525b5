"""Every error eco-rails raises on purpose, in one place.

Each message names what is wrong (the file, the field) and what to do about it. A rail that catches
:class:`EcoRailsError` knows the classifier could not decide and fails closed.
"""

from __future__ import annotations


class EcoRailsError(Exception):
    """Base class of every error eco-rails raises on purpose."""


class ConfigError(EcoRailsError, ValueError):
    """A configuration value (policy field, provider parameter, rail setting, ...) is invalid."""


class ModelLoadError(EcoRailsError, ValueError):
    """A model reference does not resolve to a loadable local model.

    A ``ValueError`` too: ``nemoguardrails server`` builds a config's main model from the request's ``model``
    field and answers a ``ValueError`` with HTTP 400, where any other error is a 500 that OpenAI clients retry.
    """


class PromptError(EcoRailsError, ValueError):
    """A prompt is empty, malformed, or does not fit the model's context window."""


class SpanNotFoundError(PromptError):
    """Flagged text could not be located inside the templated prompt."""


class ArtifactError(EcoRailsError):
    """A classifier artifact is missing, stale, corrupt or unreadable."""


class StaleArtifactError(ArtifactError):
    """The artifact was built from a different version of the policy."""


class ClassifierInputError(EcoRailsError, ValueError):
    """A prompt the classifier refuses to score (not text, not UTF-8, or too long)."""


class ClassifierRuntimeError(EcoRailsError):
    """ONNX Runtime failed while scoring; the caller must not treat the prompt as clean."""


class BackendError(EcoRailsError, RuntimeError):
    """A remote generation backend (a vLLM server) failed a request: an HTTP error, a timeout, or no server.

    The request fails with it; nothing falls back to another model, so a flagged prompt is never answered
    uncorrupted because the backend was down.
    """
