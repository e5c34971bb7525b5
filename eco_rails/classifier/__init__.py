"""The prompt classifier: from a forget policy to a calibrated ONNX model, and running it.

Training side (``eco-rails fit``; needs torch and optimum): ``dataset`` (labelled prompts from a policy,
group-aware splits), ``augment`` (training-data variants), ``train`` (fine-tuning), ``export`` (ONNX and
int8), ``calibration`` (split conformal threshold, pure) and ``fit`` (the whole pipeline).
Run-time side (ONNX Runtime only): ``text`` (normalisation), ``key_terms`` (lexical matching, pure),
``artifact`` (``manifest.json``), ``backends`` (ONNX Runtime sessions) and ``runtime`` (:class:`PromptClassifier`).

Importing this package loads neither torch nor ONNX Runtime; the names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PromptClassifier": "runtime", "ClassifierDecision": "runtime",
    "ArtifactManifest": "artifact", "read_manifest": "artifact", "artifact_status": "artifact",
    "fit_policy": "fit", "conformal_threshold": "calibration",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
