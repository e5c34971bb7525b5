"""The ``eco-rails`` command line (typer): ``python -m eco_rails.cli`` or the ``eco-rails`` script.

Thin modules, one per area; importing them registers their commands on :data:`app`. No command module
imports torch or NeMo Guardrails at import time, so ``eco-rails --help`` stays fast.
"""

# Importing the command modules registers their commands; this order is the order of `eco-rails --help`.
# isort: off
from eco_rails.cli import chat, web, policy, evaluate, benchmark, bench, unlearn, vllm  # noqa: F401
# isort: on
from eco_rails.cli.app import app

__all__ = ["app"]
