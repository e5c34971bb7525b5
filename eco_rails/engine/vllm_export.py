"""Write a model directory a vLLM server can serve, from anything the local engine loads.

vLLM loads Hugging Face directories, not the embedded GGUF; and the directory the GGUF converts to declares
``LlamaTokenizerFast``, which transformers 5 (vLLM's) rebuilds with a SentencePiece-style pre-tokenizer that
does not match SmolLM2's byte-level ``tokenizer.json`` (prompts tokenize differently, answers decode as
``ĠtheĠ``). The export (and, since this version, the conversion itself) declares ``PreTrainedTokenizerFast``,
which reads ``tokenizer.json`` verbatim under transformers 4 and 5 alike, and the end-of-turn token the model's
generation config stops on (:func:`~eco_rails.engine.model_store.make_tokenizer_portable`).
"""

from __future__ import annotations

from pathlib import Path

from eco_rails.atomic import atomic_directory
from eco_rails.engine.model_store import DevicePlacement, load_model_and_tokenizer, make_tokenizer_portable, resolve_model_dir
from eco_rails.errors import ModelLoadError


def export_for_vllm(model: str | Path, out_dir: Path, *, dtype: str = "bfloat16") -> Path:
    """Write ``model`` (embedded alias, HF directory or ``.gguf``) to ``out_dir`` as safetensors in ``dtype``,
    with a tokenizer vLLM reads like the local engine does. Written atomically; returns ``out_dir``."""
    import torch

    if dtype not in ("bfloat16", "float16", "float32"):
        raise ModelLoadError(f"dtype={dtype!r}: use bfloat16, float16 or float32.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ModelLoadError(f"{out_dir} exists and is not empty; choose a new folder (nothing was written).")
    source = resolve_model_dir(model)
    hf_model, tokenizer = load_model_and_tokenizer(source, DevicePlacement(device="cpu", dtype=dtype))
    with atomic_directory(out_dir) as tmp:
        hf_model.to(getattr(torch, dtype)).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        make_tokenizer_portable(tmp)
    return out_dir
