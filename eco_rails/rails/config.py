"""Loaded by NeMo Guardrails for every rails config that imports ``eco_rails/rails``.

Registers the ``eco`` engine and checks, at load time, that the config can work: ``custom_data.eco`` is
valid and, when flagged prompts are to be corrupted, the main model is the ``eco`` engine.
"""

import os

os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")  # offline by default

import logging  # noqa: E402

import eco_rails  # noqa: E402  (registers engine `eco`)
from eco_rails.errors import EcoRailsError  # noqa: E402
from eco_rails.rail_runtime import check_rails_config  # noqa: E402

log = logging.getLogger("eco_rails.rails")


def init(app):
    eco_rails.register_nemo_provider()
    runtime = check_rails_config(app.config)
    try:  # load the classifier now so problems show at start-up; requests fail closed if it stays broken
        runtime.classifier()
    except EcoRailsError as exc:
        log.error("eco rail: the classifier cannot be used, every request will be refused until this is fixed: %s", exc)
