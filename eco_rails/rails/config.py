"""Loaded by NeMo Guardrails for every rails config that imports ``eco_rails/rails``.

Registers the ``eco`` engine and checks, at load time, that the config can work: ``custom_data.eco`` is
valid and, when flagged prompts are to be corrupted, the main model is the ``eco`` engine.
"""

import os

os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")  # offline by default

import logging

from eco_rails.errors import ConfigError, EcoRailsError
from eco_rails.providers.nemo import register_nemo_provider
from eco_rails.rails.runtime import check_rails_config, resolve_model_paths

log = logging.getLogger("eco_rails.rails")

register_nemo_provider()  # before NeMo builds the models


def init(app):
    register_nemo_provider()
    resolve_model_paths(app.config)  # adapter paths are relative to the config folder
    runtime = check_rails_config(app.config)
    try:  # load the classifier now so problems show at start-up
        runtime.classifier()
    except ConfigError:
        # The config itself is wrong (a typo in the policy): refuse to start, with the file, field and fix, rather
        # than serve refusals whose reason only a log shows.
        raise
    except EcoRailsError as exc:
        # The artifact is missing, stale or damaged: serve, but refuse every request (fail closed) until it is re-fitted.
        log.error("eco rail: the classifier cannot be used, every request will be refused until this is fixed: %s", exc)
