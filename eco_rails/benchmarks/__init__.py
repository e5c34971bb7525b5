"""Benchmarks on a model that really learned the data: TOFU and KnowUnDo (``eco-rails benchmark``).

``data`` (rows, shipped files), ``inject`` (LoRA knowledge injection with peft), ``metrics`` (pure math),
``methods`` (registry of compared methods), ``scoring`` (one question, one method), ``eco_config`` (the
benchmark's rails config, fitted like any other), ``tofu`` / ``knowundo`` (the runs), ``report`` (JSON,
Markdown, PNG). Nothing here is imported by ``import eco_rails``.
"""
