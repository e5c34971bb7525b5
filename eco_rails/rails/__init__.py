"""The ECO input rail for NeMo Guardrails. Pull it into a rails config with ``import_paths: [eco_rails/rails]``."""
