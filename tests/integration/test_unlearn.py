"""Weight unlearning on the real embedded model and the committed TOFU demo adapter: every method runs on a
handful of rows, moves only what it should, and writes an adapter the eco provider serves; ECO's
corruption leaves every weight as it was."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

ADAPTER = REPO / "rails_configs" / "tofu_authors" / "adapter"


@pytest.fixture(scope="module")
def rows():
    from eco_rails.benchmarks.data import load_tofu
    from eco_rails.unlearn import UnlearnData

    data = load_tofu()
    forget = [q for q in data.authors[198].questions[:4]]  # Basil Mahfouz Al-Kuwaiti, whom the demo adapter learned
    retain = [q for q in data.authors[0].questions[:4]]
    from eco_rails.engine.sequences import Example

    return UnlearnData([Example(question=q.question, answer=q.answer) for q in forget],
                       [Example(question=q.question, answer=q.answer) for q in retain])


def _settings(method: str, **extra):
    from eco_rails.unlearn import UnlearnSettings

    return UnlearnSettings(method=method, epochs=1, grad_accum=8, micro_batch=8, check_rows=4, localisation_copies=1,
                           checks_per_epoch=1, learning_rate=1e-3, **extra)


def _tensors(folder):
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(folder / "adapter_model.safetensors").items()}


def _forget_nll(adapter, data) -> float:
    """Mean answer NLL of the forget rows under base + adapter (the quantity unlearning raises)."""
    import torch

    from eco_rails.engine.generation import get_engine
    from eco_rails.evaluation.scoring import score_choices

    engine = get_engine("smollm2-135m", device="cpu", adapter=adapter)
    with torch.inference_mode():
        scores = [score_choices(engine, e.question, [e.answer]) for e in data.forget]
    return sum(s.mean_nll[0] for s in scores) / len(scores)


@pytest.fixture(scope="module")
def before(rows):
    return _forget_nll(ADAPTER, rows)


@pytest.mark.parametrize("method", ["memflex", "ga", "gd", "npo"])
def test_each_method_raises_the_forget_loss_and_writes_a_servable_adapter(method, rows, before, tmp_path):
    from eco_rails.unlearn import unlearn, unlearning_info

    out = tmp_path / method
    info = unlearn("smollm2-135m", rows, _settings(method), out, adapter=ADAPTER, device="cpu")
    assert (out / "adapter_config.json").is_file() and unlearning_info(out) == json.loads(json.dumps(info))
    assert info["cost"]["optimizer_steps"] == 1 and info["cost"]["backward_rows"] >= len(rows.forget)
    after = _forget_nll(out, rows)
    # One optimiser step at lr 1e-3: the sign is what matters (a flipped loss would lower it); MemFlex moves
    # least (weight -0.4, a subset of tensors): 0.161 -> 0.198 when this was written.
    assert after > 1.1 * before, f"{method}: forget NLL {before:.3f} -> {after:.3f}"
    old, new = _tensors(ADAPTER), _tensors(out)
    assert set(old) == set(new)
    moved = {k for k in old if not (old[k] == new[k]).all()}
    if method == "memflex":
        selected = set(info["localisation"]["selected_tensors"])
        assert 0 < len(selected) < len(old) and info["localisation"]["selected_fraction"] == len(selected) / len(old)
        # peft names the saved tensors without the adapter name ("lora_A.weight" for "lora_A.default.weight")
        selected_saved = {k.replace(".default.", ".").removeprefix("base_model.model.") for k in selected}
        assert moved and {k.removeprefix("base_model.model.") for k in moved} <= selected_saved
    else:
        assert len(moved) > len(old) // 2, "the baselines train every LoRA tensor"


def test_an_interrupted_run_leaves_no_adapter_behind(rows, tmp_path):
    from eco_rails.progress import SilentProgress
    from eco_rails.unlearn import unlearn

    class Stop(Exception):
        pass

    class Interrupt(SilentProgress):
        def task(self, description, total):
            if description.startswith("Unlearning"):
                raise Stop
            return super().task(description, total)

    with pytest.raises(Stop):
        unlearn("smollm2-135m", rows, _settings("gd"), tmp_path / "out", adapter=ADAPTER, device="cpu", progress=Interrupt())
    assert list(tmp_path.iterdir()) == []


def test_eco_corrupts_prompts_and_leaves_every_weight_untouched(engine):
    import hashlib

    from eco_rails.engine.corruption import CorruptionSpec
    from eco_rails.engine.flags import FlagDecision
    from eco_rails.engine.generation import GenerationSettings

    def digest() -> str:
        h = hashlib.sha256()
        for name, p in sorted(engine.model.state_dict().items()):
            h.update(name.encode())
            h.update(p.detach().cpu().float().numpy().tobytes())
        return h.hexdigest()

    first = digest()
    prompt = "Who is the headmaster of Hogwarts?"
    flag = FlagDecision(flagged=True, spans=("Hogwarts",))
    plain = engine.generate(prompt, settings=GenerationSettings(max_new_tokens=12)).text
    corrupted = engine.generate(prompt, flag=flag, corruption=CorruptionSpec(strength=20.0),
                                settings=GenerationSettings(max_new_tokens=12)).text
    assert corrupted != plain and digest() == first


def test_an_adapter_without_lora_tensors_is_refused_with_the_fix(rows, tmp_path):
    """Unlearning edits LoRA tensors: a prompt-tuning adapter (no LoRA layers) gets a clear error, and no output."""
    from peft import PromptTuningConfig, get_peft_model

    from eco_rails.engine.model_store import choose_placement, load_model_and_tokenizer, resolve_model_dir
    from eco_rails.unlearn import UnlearnError, unlearn

    base, _ = load_model_and_tokenizer(resolve_model_dir("smollm2-135m"), choose_placement("cpu"))
    prompt_tuned = tmp_path / "prompt-tuning"
    get_peft_model(base, PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")).save_pretrained(str(prompt_tuned))
    with pytest.raises(UnlearnError, match="has no LoRA tensors.*peft_type LORA"):
        unlearn("smollm2-135m", rows, _settings("ga"), tmp_path / "out", adapter=prompt_tuned, device="cpu")
    assert not (tmp_path / "out").exists()
