"""Runs before NeMo Guardrails builds the models: registers the `eco` engine."""

import os

# Keep the config offline: no usage statistics are posted.
os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")

import eco_rails  # noqa: E402,F401  (importing registers engine `eco`)


def init(app):  # noqa: ARG001 - NeMo calls init(app); re-register in case frameworks were reset
    eco_rails.register_nemo_provider()
