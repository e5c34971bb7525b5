"""The vllm backend's embedding step without the model: the matrix read alone from safetensors, with each
family's transform, gives exactly what the model feeds its first layer (random tiny models, no weights to fetch)."""

from __future__ import annotations

import pytest
import torch

SIZES = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
             num_key_value_heads=2, head_dim=8, max_position_embeddings=64)


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral", "gemma", "gemma2", "gemma3_text"])
def test_vllm_embedding_table_matches_what_the_model_feeds_its_first_layer(model_type, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from eco_rails.engine.embedding_table import EmbeddingTable

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **SIZES)).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    ids = [5, 17, 99, 3]
    seen = {}

    def capture(module, args, kwargs):
        seen["hidden"] = (args[0] if args else kwargs["hidden_states"]).detach()

    layers = model.model.layers
    handle = layers[0].register_forward_pre_hook(capture, with_kwargs=True)
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids]))
    handle.remove()
    table = EmbeddingTable.load(tmp_path)
    ours = table.finish(table.lookup(ids))
    assert torch.allclose(ours, seen["hidden"][0].float(), atol=1e-6), model_type
    scaled = model_type.startswith("gemma")
    assert (table.pre_scale is not None or table.post_scale is not None) is scaled


def test_vllm_embedding_table_error_names_the_fix_without_safetensors(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from eco_rails.engine.embedding_table import EmbeddingTable
    from eco_rails.errors import ModelLoadError

    AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **SIZES)).save_pretrained(tmp_path, safe_serialization=False)
    with pytest.raises(ModelLoadError, match=r"no \.safetensors weights.*safe_serialization=True"):
        EmbeddingTable.load(tmp_path)
