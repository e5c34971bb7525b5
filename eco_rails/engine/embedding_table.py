"""A model's input-embedding step without the model: the embedding matrix alone, plus its transform.

A remote backend (a vLLM server) runs the transformer; the provider only has to turn the flagged prompt's
tokens into the vectors the model's own embedding step would produce, corrupt them, and send them. For that
it needs the ``(vocab, hidden)`` matrix, read alone from the checkpoint's safetensors (an 8B model's matrix
is ~1 GB instead of ~16 GB for the whole model), and the family's transform of the lookup:

* Gemma 3's embedding module multiplies the lookup by ``sqrt(hidden_size)`` itself (``embed_scale``): the
  local engine corrupts the scaled vectors, so the scale is applied before corruption (``pre_scale``);
* Gemma 1 and 2 scale inside the model's forward, to passed ``inputs_embeds`` too: the local engine corrupts
  unscaled vectors and the model scales them, so the scale is applied after corruption (``post_scale``).

vLLM takes passed embeddings as the first layer's input (it does not scale them), so what
:meth:`EmbeddingTable.finish` returns is exactly what the local engine's model feeds its first layer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from eco_rails.errors import ModelLoadError

# Families whose forward multiplies the embeddings (passed ones included) by sqrt(hidden_size).
FORWARD_SCALED_FAMILIES = frozenset({"gemma", "gemma2", "paligemma", "recurrent_gemma"})


@dataclass(frozen=True)
class EmbeddingTable:
    """The input-embedding matrix and the transforms around corruption (see the module docstring)."""

    weight: torch.Tensor  # (vocab, hidden), as stored
    pre_scale: float | None = None
    post_scale: float | None = None
    context_window: int | None = None  # the model's max_position_embeddings (read from the same config)

    @property
    def hidden_size(self) -> int:
        return int(self.weight.shape[1])

    def lookup(self, ids: Sequence[int]) -> torch.Tensor:
        """``(T, hidden)`` float32 vectors of ``ids`` as the model's embedding module returns them."""
        rows = self.weight[torch.tensor(list(ids), dtype=torch.long)]
        if self.pre_scale is not None:  # the module scales in the weights' dtype, then we work in float32
            rows = rows * torch.tensor(self.pre_scale, dtype=rows.dtype)
        return rows.float()

    def finish(self, rows: torch.Tensor) -> torch.Tensor:
        """Apply what the model's forward does to (possibly corrupted) embeddings before its first layer."""
        if self.post_scale is None:
            return rows
        return rows * torch.tensor(self.post_scale, dtype=self.weight.dtype).float()

    @classmethod
    def load(cls, model_dir: Path) -> EmbeddingTable:
        """Read the matrix of ``model_dir`` (a local HF causal-LM directory with safetensors weights).

        Raises :class:`ModelLoadError` when the directory has no safetensors weights or no input-embedding tensor.
        """
        from safetensors import safe_open
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"{model_dir}/config.json could not be read as a model config: {exc}") from exc
        name, module_scale = _embedding_parameter(config)
        files = _weight_files(model_dir)
        for file, keys in files.items():
            key = _match_key(name, keys)
            if key is not None:
                with safe_open(str(file), framework="pt") as handle:
                    weight = handle.get_tensor(key)
                break
        else:
            raise ModelLoadError(
                f"{model_dir}: no tensor named like {name!r} in its safetensors files, so the input embeddings cannot "
                "be read alone. Save the model with `save_pretrained(dir, safe_serialization=True)`.")
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden = int(getattr(text_config, "hidden_size", weight.shape[1]))
        post = math.sqrt(hidden) if getattr(text_config, "model_type", config.model_type) in FORWARD_SCALED_FAMILIES else None
        window = int(getattr(text_config, "max_position_embeddings", 0) or 0) or None
        return cls(weight=weight, pre_scale=module_scale, post_scale=post, context_window=window)


def _embedding_parameter(config: Any) -> tuple[str, float | None]:
    """The state-dict name of the input-embedding weight and the module's own scale, from a weightless model."""
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except Exception as exc:
        raise ModelLoadError(f"A {config.model_type!r} model could not be built from its config.json: {exc}") from exc
    module = model.get_input_embeddings()
    name = next(n for n, p in model.named_parameters(remove_duplicate=False) if p is module.weight)
    scale = getattr(module, "embed_scale", None)
    if isinstance(scale, torch.Tensor):  # a buffer on the meta device: recompute it from the config
        scale = math.sqrt(int(module.weight.shape[1]))
    return name, (float(scale) if scale is not None else None)


def _weight_files(model_dir: Path) -> dict[Path, list[str]]:
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        by_file: dict[Path, list[str]] = {}
        for key, file in weight_map.items():
            by_file.setdefault(model_dir / file, []).append(key)
        return by_file
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(
            f"{model_dir} has no .safetensors weights; the vllm backend reads the input embeddings from them. "
            "Re-save the model with `save_pretrained(dir, safe_serialization=True)` (or `eco-rails export-vllm`).")
    out: dict[Path, list[str]] = {}
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            out[path] = list(handle.keys())
    return out


def _match_key(name: str, keys: Sequence[str]) -> str | None:
    """``name`` itself, or the one stored key that ends with it or that it ends with (checkpoints differ in
    prefixes such as ``model.`` or ``language_model.``)."""
    if name in keys:
        return name
    tail = name.split(".", 1)[-1]
    candidates = [k for k in keys if k.endswith(tail) or name.endswith(k)]
    return candidates[0] if len(candidates) == 1 else None
