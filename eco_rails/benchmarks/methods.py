"""Methods a benchmark compares, as a registry (like peft's tuners): each turns a question into a
:class:`Condition`, i.e. which model answers it and how (corrupted, refused, with a system prompt).

Built in: ``target`` (the injected model, untouched), ``retain`` (fine-tuned without the forget part: the
reference for "never saw it"), ``eco`` (the rail's classifier decides, flagged prompts are corrupted with
the policy's corruption), ``refuse`` (the rail's classic block of flagged prompts) and ``system-prompt``
("act as if you never read it", Thaker et al. 2024); the weight-unlearning methods ``memflex``, ``ga``,
``gd`` and ``npo`` (the target adapter unlearned by :mod:`eco_rails.unlearn`, answering everything), and the
hybrid ``memflex+eco`` (MemFlex weights behind the rail: flagged prompts are also corrupted). A method is a
factory that gets the :class:`MethodContext` and returns a function ``question -> Condition``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from eco_rails.engine.corruption import CorruptionSpec
from eco_rails.engine.flags import FlagDecision
from eco_rails.evaluation.evaluate import REFUSAL  # the rail's refusal, the same text `eco-rails eval` scores
from eco_rails.unlearn import method_names as weight_method_names

WEIGHT_METHODS = tuple(weight_method_names())  # memflex, ga, gd, npo (eco_rails.unlearn's registry)
HYBRID = "memflex+eco"

__all__ = ["HYBRID", "WEIGHT_METHODS", "REFUSAL", "Condition", "MethodContext", "build_method", "method_names", "register_method"]


@dataclass(frozen=True)
class Condition:
    """How one question is put to a model."""

    engine: Any  # EcoEngine
    flag: FlagDecision | None = None
    corruption: CorruptionSpec | None = None
    system_prompt: str | None = None
    refused: bool = False

    @property
    def corrupted(self) -> bool:
        return self.flag is not None and self.flag.flagged

    def cache_key(self, question: str) -> tuple:
        """Conditions with equal keys give equal answers (used to reuse the target model's results for
        prompts the rail leaves untouched: the provider is bit-identical to the plain model there)."""
        spec = self.corruption.model_dump_json() if self.corrupted and self.corruption is not None else None
        return (id(self.engine), self.system_prompt, self.refused, self.corrupted, spec, question)


@dataclass
class MethodContext:
    """What methods may use: engines, the rail's decisions, the policy's system prompt."""

    target: Any  # EcoEngine of base + target adapter
    retain: Any | None = None  # EcoEngine of base + retain adapter (TOFU)
    decide: Callable[[str], tuple[bool, FlagDecision, CorruptionSpec | None]] | None = None
    system_prompt: str = ""
    weights: dict[str, Any] = field(default_factory=dict)  # weight-unlearning method -> EcoEngine of its adapter
    extra: dict[str, Any] = field(default_factory=dict)


MethodFn = Callable[[str], Condition]
MethodFactory = Callable[[MethodContext], MethodFn | None]

_METHODS: dict[str, MethodFactory] = {}


def register_method(name: str, factory: MethodFactory) -> None:
    """Register a method; a factory returns ``None`` where the method does not apply (no retain model)."""
    _METHODS[name] = factory


def method_names() -> list[str]:
    return list(_METHODS)


def build_method(name: str, context: MethodContext) -> MethodFn | None:
    if name not in _METHODS:
        raise KeyError(f"Unknown method {name!r}; registered: {', '.join(_METHODS)}")
    return _METHODS[name](context)


def _target(ctx: MethodContext) -> MethodFn:
    return lambda question: Condition(ctx.target)


def _retain(ctx: MethodContext) -> MethodFn | None:
    if ctx.retain is None:
        return None
    return lambda question: Condition(ctx.retain)


def _rail(ctx: MethodContext, refuse: bool) -> MethodFn | None:
    decide = ctx.decide
    if decide is None:
        return None

    def method(question: str) -> Condition:
        flagged, flag, spec = decide(question)
        if not flagged:
            return Condition(ctx.target)
        if refuse:
            return Condition(ctx.target, refused=True)
        return Condition(ctx.target, flag=flag, corruption=spec)

    return method


def _system_prompt(ctx: MethodContext) -> MethodFn:
    return lambda question: Condition(ctx.target, system_prompt=ctx.system_prompt)


def _weights(name: str) -> MethodFactory:
    def factory(ctx: MethodContext) -> MethodFn | None:
        engine = ctx.weights.get(name)
        if engine is None:
            return None
        return lambda question: Condition(engine)

    return factory


def _hybrid(ctx: MethodContext) -> MethodFn | None:
    """MemFlex weights behind the rail: the weights forget what they can, the rail corrupts what is asked."""
    engine, decide = ctx.weights.get("memflex"), ctx.decide
    if engine is None or decide is None:
        return None

    def method(question: str) -> Condition:
        flagged, flag, spec = decide(question)
        return Condition(engine, flag=flag, corruption=spec) if flagged else Condition(engine)

    return method


register_method("target", _target)
register_method("retain", _retain)
register_method("eco", lambda ctx: _rail(ctx, refuse=False))
register_method("refuse", lambda ctx: _rail(ctx, refuse=True))
register_method("system-prompt", _system_prompt)
for _name in WEIGHT_METHODS:
    register_method(_name, _weights(_name))
register_method(HYBRID, _hybrid)

DEFAULT_METHODS = ("target", "retain", "eco", "refuse", "system-prompt", *WEIGHT_METHODS, HYBRID)
