"""ONNX Runtime sessions for the classifier, set up in one place (the runtime and the benchmarks share it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eco_rails.errors import ArtifactError, ConfigError

_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def onnx_providers(device: str | None = None) -> list[str]:
    """Execution providers in preference order: CUDA when ONNX Runtime has it (or ``device`` asks for it),
    then CPU. ``device="cpu"`` forces the CPU; ``device="cuda"`` without CUDA raises :class:`ConfigError`."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ArtifactError("onnxruntime is not installed: `pip install 'eco-rails[cpu]'` (or `[gpu]`).") from exc

    available = ort.get_available_providers()
    if device is not None and not device.startswith("cuda"):
        return [_CPU]
    if device is not None and _CUDA not in available:
        raise ConfigError(
            f"--device {device}: ONNX Runtime here has no CUDAExecutionProvider (providers: {available}). "
            "Install eco-rails[gpu] (onnxruntime-gpu) or run the classifier on cpu."
        )
    return [p for p in (_CUDA, _CPU) if p in available]


def make_session(onnx_path: Path, providers: list[str] | None = None) -> Any:
    """An ``InferenceSession`` with warnings quietened; :class:`ArtifactError` naming the file and the fix."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ArtifactError("onnxruntime is not installed: `pip install 'eco-rails[cpu]'` (or `[gpu]`).") from exc

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers or onnx_providers())
    except Exception as exc:
        raise ArtifactError(f"{onnx_path} could not be loaded by ONNX Runtime (corrupt or truncated?): {exc}. "
                            "Run `eco-rails fit <rails-config-dir>` to rebuild it.") from None
