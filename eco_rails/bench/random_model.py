"""Randomly initialised causal LMs of realistic sizes, for throughput benchmarks where weights cannot travel.

Generation speed depends on the architecture and sizes, not on weight values, so a random 1B Llama on a GPU
measures what a trained one would. The tokenizer is a real one (the embedded SmolLM2's, or ``--tokenizer``),
so prompts, the chat template and the corrupted-span logic run exactly as with a trained model.
"""

from __future__ import annotations

from pathlib import Path

from eco_rails.errors import ConfigError

# Llama-3.2-1B's shape (vocabulary taken from the tokenizer); "tiny" exercises the same path on a CPU in seconds.
PRESETS: dict[str, dict[str, object]] = {
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, max_position_embeddings=8192, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True),
}


def random_engine(preset: str, *, tokenizer_dir: Path | None, device: str, dtype: str | None, seed: int = 0):
    """An :class:`~eco_rails.engine.EcoEngine` over a random Llama of the given preset."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from eco_rails.engine.generation import EcoEngine
    from eco_rails.engine.model_store import choose_placement, resolve_model_dir

    if preset not in PRESETS:
        raise ConfigError(f"--random-model {preset!r} is not a preset; use one of {', '.join(PRESETS)}.")
    placement = choose_placement(device, dtype)
    if tokenizer_dir is None:
        try:
            tokenizer_dir = resolve_model_dir("smollm2-135m")
        except Exception as exc:
            raise ConfigError(f"--random-model needs a tokenizer: pass --tokenizer DIR (a folder with tokenizer.json); "
                              f"the embedded model's is not available here ({exc}).") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except Exception as exc:
        raise ConfigError(f"--tokenizer {tokenizer_dir}: no usable tokenizer there ({exc}).") from None
    eos = tokenizer.eos_token_id
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                         pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos, **PRESETS[preset])
    torch.manual_seed(seed)
    with torch.device(placement.device):  # initialise in place: a 1B model is slow to build on the CPU and copy
        model = LlamaForCausalLM(config)
    model.to(getattr(torch, placement.dtype)).eval()
    return EcoEngine(model, tokenizer, name=f"random:{preset}")


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
