"""One request-resolution step shared by both providers: what to generate, and whether to corrupt it.

Whether a call is corrupted comes from, in order:

1. ``eco_flag`` passed at call time (``FlagDecision``, ``True`` or ``False``): a decision made elsewhere;
2. the ECO rail's signed markers inside the messages (verified and stripped here, whatever else decides);
3. the provider's ``flag_decider`` (e.g. a :class:`~eco_rails.classifier.runtime.PromptClassifier`);
4. otherwise the call is clean and runs exactly like the plain model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from eco_rails.engine.corruption.spec import CorruptionSpec
from eco_rails.engine.flags import FlagDecider, FlagDecision
from eco_rails.engine.generation import GenerationSettings
from eco_rails.errors import ConfigError
from eco_rails.providers.markers import extract as extract_markers
from eco_rails.providers.settings import ProviderFields

log = logging.getLogger(__name__)

# Call-time keyword arguments a caller (NeMo, LangChain, a user) may pass that the engine understands.
CALL_PARAMS = frozenset({"temperature", "max_tokens", "max_new_tokens", "top_p", "seed"})

EnginePrompt = str | list[dict[str, str]]


@dataclass(frozen=True)
class EngineRequest:
    """A resolved request: the marker-free prompt and the engine's keyword arguments."""

    prompt: EnginePrompt
    flag: FlagDecision
    corruption: CorruptionSpec
    settings: GenerationSettings
    use_chat_template: bool
    system_prompt: str | None

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`EcoEngine.generate` / :meth:`EcoEngine.stream`."""
        return {"flag": self.flag, "corruption": self.corruption, "settings": self.settings,
                "use_chat_template": self.use_chat_template, "system_prompt": self.system_prompt}


def explicit_flag(value: object) -> FlagDecision | None:
    """An ``eco_flag`` call argument as a decision (``None``: not given)."""
    if value is None or isinstance(value, FlagDecision):
        return value
    if isinstance(value, bool):
        return FlagDecision.flag() if value else FlagDecision.clean()
    raise ConfigError(f"eco_flag must be a FlagDecision, True or False, got {type(value).__name__} {value!r}.")


def resolve_request(prompt: EnginePrompt, settings: ProviderFields, *, stop: list[str] | None = None,
                    call_kwargs: Mapping[str, Any] | None = None,
                    flag_decider: FlagDecider | None = None) -> EngineRequest:
    """Resolve one call: strip and verify rail markers, decide the flag, merge decoding settings.

    ``prompt`` is a string or ``{"role", "content"}`` messages; ``call_kwargs`` are the caller's keyword
    arguments (``eco_flag`` and :data:`CALL_PARAMS` are used, others are ignored and logged at debug level).
    """
    kwargs = dict(call_kwargs or {})
    flag = explicit_flag(kwargs.pop("eco_flag", None))
    ignored = sorted(set(kwargs) - CALL_PARAMS)
    if ignored:
        log.debug("eco provider ignores call parameters %s", ignored)
    extracted = extract_markers(prompt)  # the rail's decision travels as signed markers: verify and remove them
    clean_prompt: EnginePrompt = extracted.prompt
    corruption = settings.corruption
    if flag is None and extracted.flagged:
        flag, corruption = extracted.rail_decision(corruption)
    if flag is None:
        if flag_decider is not None:
            messages = [{"role": "user", "content": clean_prompt}] if isinstance(clean_prompt, str) else clean_prompt
            flag = flag_decider.decide(messages)
        else:
            flag = FlagDecision.clean()
    return EngineRequest(
        prompt=clean_prompt, flag=flag, corruption=corruption,
        settings=settings.generation(stop, **{k: v for k, v in kwargs.items() if k in CALL_PARAMS}),
        use_chat_template=settings.chat_template, system_prompt=settings.system_prompt,
    )
