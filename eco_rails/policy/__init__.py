"""Forget policies: what a model must forget, written as YAML by a compliance team.

The bottom of the data path (policy -> classifier -> rail -> provider -> engine) and torch-free: importing
it loads neither torch nor NeMo Guardrails, so editors, CI checks and ``eco-rails policy-schema`` stay fast.
"""

from eco_rails.policy.model import (
    DEFAULT_BACKBONE,
    SCHEMA_PATH,
    ClassifierSettings,
    CorruptionSettings,
    Entity,
    EvaluationSettings,
    ForgetPolicy,
    ForgetTarget,
    OptimizationSettings,
    load_policy,
    policy_json_schema,
)

__all__ = [
    "DEFAULT_BACKBONE", "SCHEMA_PATH", "ClassifierSettings", "CorruptionSettings", "Entity", "EvaluationSettings", "ForgetPolicy", "ForgetTarget",
    "OptimizationSettings", "load_policy", "policy_json_schema",
]
