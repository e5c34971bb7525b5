"""The flag decision: whether a request falls inside a forget policy, and which text to corrupt."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from eco_rails.engine.corruption.spec import CorruptionSpec


class FlagDecision(BaseModel):
    """Outcome of deciding whether a prompt is in scope of a forget policy.

    ``spans`` lists exact pieces of user text to corrupt. Empty means "the latest user message".
    ``whole_prompt`` corrupts every prompt token instead (system prompt and template included).
    ``score``/``target``/``threshold`` are informational (classifier output), never used to corrupt.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    flagged: bool
    spans: tuple[str, ...] = ()
    whole_prompt: bool = False
    score: float | None = None
    target: str | None = None
    threshold: float | None = Field(default=None)

    @classmethod
    def clean(cls) -> FlagDecision:
        """Not in scope: run the prompt untouched."""
        return cls(flagged=False)

    @classmethod
    def flag(cls, *spans: str, whole_prompt: bool = False, **info: object) -> FlagDecision:
        """In scope: corrupt ``spans`` (none: the latest user message), or the whole prompt."""
        return cls.model_validate({"flagged": True, "spans": tuple(spans), "whole_prompt": whole_prompt, **info})


@runtime_checkable
class FlagDecider(Protocol):
    """Anything that decides, from the chat, whether to corrupt it.

    A calibrated :class:`~eco_rails.PromptClassifier` implements this; so can a user's own function.
    ``messages`` are ``{"role", "content"}`` dicts, oldest first.
    """

    def decide(self, messages: Sequence[dict[str, str]]) -> FlagDecision: ...


class RailCorruption(BaseModel):
    """How the rail wants a flagged request corrupted (the policy's settings with the learned strength)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: CorruptionSpec
    whole_prompt: bool = False
