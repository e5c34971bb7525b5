"""Exported adapters: half precision, a portable base-model name, checksums that catch a damaged file; the
committed demo adapter matches its checksums and stays under 10 MB."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from eco_rails.benchmarks.inject import export_adapter, verify_checksums

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "rails_configs" / "tofu_authors"


def _fake_adapter(folder: Path) -> Path:
    folder.mkdir()
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.randn(4, 8)}, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/home/me/.cache/model", "r": 4}))
    (folder / "injection.json").write_text(json.dumps({"examples": 3}))
    return folder


def test_export_halves_weights_names_the_portable_base_and_writes_checksums(tmp_path):
    src = _fake_adapter(tmp_path / "src")
    out = export_adapter(src, tmp_path / "out", "smollm2-135m")
    tensors = load_file(out / "adapter_model.safetensors")
    original = load_file(src / "adapter_model.safetensors")
    (name, value), = tensors.items()
    assert value.dtype == torch.float16 and torch.allclose(value.float(), original[name], atol=1e-3)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m"
    assert verify_checksums(out) == []
    with (out / "adapter_model.safetensors").open("ab") as handle:
        handle.write(b"\0")
    assert verify_checksums(out) == ["adapter_model.safetensors"]


def test_committed_demo_adapter_matches_its_checksums_and_is_small():
    adapter = DEMO / "adapter"
    assert verify_checksums(adapter) == []
    assert (adapter / "adapter_model.safetensors").stat().st_size < 10_000_000
    info = json.loads((adapter / "injection.json").read_text())
    assert info["examples"] == 200  # ten TOFU authors x 20 questions
