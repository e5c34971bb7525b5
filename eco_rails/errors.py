"""Errors raised by eco-rails. Each message names what is wrong and what to do about it."""

from __future__ import annotations


class EcoRailsError(Exception):
    """Base class of every error eco-rails raises on purpose."""


class ModelLoadError(EcoRailsError):
    """A model reference does not resolve to a loadable local causal language model."""


class PromptError(EcoRailsError, ValueError):
    """A prompt is empty, malformed, or does not fit the model's context window."""


class SpanNotFoundError(PromptError):
    """Flagged text could not be located inside the templated prompt."""


class ConfigError(EcoRailsError, ValueError):
    """A configuration value (provider parameter, corruption setting, ...) is invalid."""
