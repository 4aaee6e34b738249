"""The lab engine program (ironserve.lab.engine) on loopback, without Docker or Ray: the command
lines the builders emit parse under the version's flag table and unknown flags exit 2; the
weights checks; the load progress; the OpenAI API (auth, streaming, determinism, usage) and
/metrics with vLLM's names; SGLang's multi-node rendezvous."""

from __future__ import annotations

import json
import os
import shlex
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironserve.catalog.engines import ENGINES, EngineKind
from ironserve.lab import engine_image
from ironserve.lab.engine import flags, loading, weights

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "engines"
KEY = "lab-test-key-123"


def make_model(
    folder: Path,
    shards: int = 4,
    heads: int = 32,
    kv_heads: int = 8,
    layers: int = 32,
    max_positions: int = 131072,
) -> Path:
    """A Hugging Face-shaped model folder: config.json, an index and tiny safetensors shards."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "num_hidden_layers": layers,
        "max_position_embeddings": max_positions,
    }
    (folder / "config.json").write_text(json.dumps(config))
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        tensor = f"model.layers.{i}.mlp.weight"
        header = json.dumps({tensor: {"dtype": "F16", "shape": [8], "data_offsets": [0, 16]}})
        raw = header.encode() + b" " * (-len(header) % 8)
        (folder / name).write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(range(16)))
        weight_map[tensor] = name
    index = {"metadata": {"total_size": 16 * shards}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def _golden_command(name: str, marker: str) -> list[str]:
    for line in (GOLDEN / name).read_text().splitlines():
        if marker in line:
            return shlex.split(line)
    raise AssertionError(f"{marker!r} not in {name}")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IRONSERVE_LAB", "VLLM_"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    env.update(extra)
    return env


def _run(module: str, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"ironserve.lab.engine.{module}", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- flags ----------------------------------------------------------------------------------


def test_the_builders_serve_lines_parse_under_their_version() -> None:
    # The stand-in takes the Ray launch (the native one is parsed by the real vLLM: lab tests).
    argv = _golden_command("l40sx2-3node-r1distill32b-vllm.txt", "vllm serve")
    args = argv[argv.index("serve") + 1 :]
    parsed = flags.parse(flags.load_table("vllm", "0.11.0"), args)
    assert parsed.unknown == []
    assert parsed.positionals == [args[0]]
    assert parsed.int("--tensor-parallel-size", default=0) == 2
    assert parsed.get("--distributed-executor-backend") == "ray"
    argv = _golden_command("h100x8-2node-r1-sglang.txt", "--node-rank 1")
    options = argv[argv.index("-c") + 2 :]  # `python3 -c <key wrapper> <options>`
    parsed = flags.parse(flags.load_table("sglang", "0.5.23"), options)
    assert parsed.unknown == []
    assert parsed.get("--dist-init-addr") == "10.10.0.11:5000"
    assert parsed.int("--node-rank", default=0) == 1


def test_flags_follow_the_declared_version() -> None:
    old, new = flags.load_table("vllm", "0.9.2"), flags.load_table("vllm", "0.11.0")
    assert flags.parse(old, ["--enable-reasoning"]).unknown == []
    assert flags.parse(new, ["--enable-reasoning"]).unknown == ["--enable-reasoning"]
    # A version between two tables takes the nearest one below it.
    assert flags.load_table("vllm", "0.11.1").version == "0.11.0"
    # argparse's prefix matching, vLLM's underscores, -tp, --opt=value.
    parsed = flags.parse(new, ["--max-model-l", "4096", "--tensor_parallel_size=4", "-pp", "2"])
    assert parsed.unknown == []
    assert parsed.options["--max-model-len"] == "4096"
    assert parsed.int("--tensor-parallel-size", default=1) == 4
    assert parsed.int("--pipeline-parallel-size", default=1) == 2


def test_an_unknown_flag_exits_2_like_argparse(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    done = _run(
        "vllm_cli",
        ["serve", str(model), "--tensor-parallel-size", "2", "--enable-reasoning"],
        IRONSERVE_LAB_ENGINE_VERSION="0.11.0",
    )
    assert done.returncode == 2
    assert "vllm serve: error: unrecognized arguments: --enable-reasoning" in done.stderr
    done = _run(
        "sglang_cli", ["--model-path", str(model), "--bogus"], IRONSERVE_LAB_ENGINE_VERSION="0.5.4"
    )
    assert done.returncode == 2
    assert "error: unrecognized arguments: --bogus" in done.stderr
    done = _run("vllm_cli", ["serve", str(model)])  # an image without a declared version
    assert done.returncode == 2 and "IRONSERVE_LAB_ENGINE_VERSION" in done.stderr


def test_trtllm_serve_lines_parse_as_clicks_exact_options() -> None:
    argv = _golden_command("h200x8-1node-r1-trtllm.txt", "--entrypoint trtllm-serve")
    image = argv.index("nvcr.io/nvidia/tensorrt-llm/release:1.2.1")
    table = flags.load_table("trtllm", "1.2.1")
    parsed = flags.parse(table, argv[image + 1 :], exact=True)
    assert parsed.unknown == []
    assert parsed.positionals == ["/ironserve/models/DeepSeek-R1"]
    assert parsed.int("--tp_size", default=0) == 8
    # Click neither folds - and _ nor takes prefixes, unlike vLLM's argparse.
    parsed = flags.parse(table, ["--tp-size", "8", "--max_seq", "4096"], exact=True)
    assert parsed.unknown == ["--tp-size", "--max_seq"]


def test_the_trtllm_stand_in_serves_the_folders_name_and_refuses_unknown_options(
    tmp_path: Path,
) -> None:
    model = make_model(tmp_path / "models" / "lab-model")
    done = _run(
        "trtllm_cli",
        [str(model), "--tp_size", "2", "--served-model-name", "x"],
        IRONSERVE_LAB_ENGINE_VERSION="1.2.1",
    )
    assert done.returncode == 2
    assert "Error: No such option: --served-model-name" in done.stderr
    port = _free_port()
    options = ["--backend", "pytorch", "--tp_size", "2", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ironserve.lab.engine.trtllm_cli", "serve", str(model), *options],
        env=_env(IRONSERVE_LAB_ENGINE_VERSION="1.2.1", IRONSERVE_LAB_LOAD_SECONDS="0.1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        # No key asked (trtllm-serve has none), and the model is named after its folder.
        assert answer.status_code == 200
        assert [m["id"] for m in answer.json()["data"]] == ["lab-model"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- weights --------------------------------------------------------------------------------


def test_a_complete_model_passes_the_checks(tmp_path: Path) -> None:
    checked = weights.check(str(make_model(tmp_path / "m")), tensor_parallel=8, pipeline_parallel=2)
    assert len(checked.shards) == 4 and checked.config["num_attention_heads"] == 32


@pytest.mark.parametrize(
    ("damage", "tp", "pp", "message"),
    [
        ("missing-shard", 2, 1, "missing shard(s): model-00003-of-00004.safetensors"),
        ("corrupt-header", 2, 1, "corrupt safetensors header"),
        ("truncated", 2, 1, "truncated"),
        ("no-config", 2, 1, "config.json: missing"),
        ("none", 3, 1, "attention heads (32) must be divisible by tensor parallel size (3)"),
        ("none", 2, 33, "pipeline parallel size (33) is larger than the number of hidden layers"),
    ],
)
def test_broken_weights_are_refused(
    tmp_path: Path, damage: str, tp: int, pp: int, message: str
) -> None:
    model = make_model(tmp_path / "m")
    shard = model / "model-00003-of-00004.safetensors"
    if damage == "missing-shard":
        shard.unlink()
    elif damage == "corrupt-header":
        data = bytearray(shard.read_bytes())
        data[8] = ord("X")  # the JSON header no longer opens with {
        shard.write_bytes(bytes(data))
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-4])
    elif damage == "no-config":
        (model / "config.json").unlink()
    with pytest.raises(weights.WeightsError) as caught:
        weights.check(str(model), tp, pp)
    assert message in str(caught.value)


def test_kv_heads_fewer_than_tp_are_replicated_as_vllm_does(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", heads=32, kv_heads=4)
    weights.check(str(model), 8)  # 8 % 4 == 0: each KV head is replicated
    model = make_model(tmp_path / "n", heads=24, kv_heads=6)
    with pytest.raises(weights.WeightsError, match="key/value heads"):
        weights.check(str(model), 4)


def test_the_load_reports_progress_per_shard_over_the_set_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checked = weights.check(str(make_model(tmp_path / "m")), 2)
    took = loading.load(checked, seconds=0.4)
    lines = capsys.readouterr().err.splitlines()
    progress = [line for line in lines if line.startswith("Loading safetensors")]
    assert took >= 0.4
    assert len(progress) == 5
    assert "  0% Completed | 0/4" in progress[0]
    assert " 50% Completed | 2/4" in progress[2]
    assert "100% Completed | 4/4" in progress[-1]


# -- the HTTP API ---------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """`vllm serve` (single node, no Ray) on a free loopback port, with an API key."""
    model = make_model(tmp_path / "model")
    port = _free_port()
    log = tmp_path / "engine.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ironserve.lab.engine.vllm_cli",
                "serve",
                str(model),
                "--served-model-name",
                "lab-model",
                "--max-model-len",
                "4096",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=_env(
                IRONSERVE_LAB_ENGINE_VERSION="0.11.0",
                IRONSERVE_LAB_LOAD_SECONDS="0.3",
                VLLM_API_KEY=KEY,
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    try:
        yield base, log, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_auth_as_vllm_health_open_v1_closed(served: tuple[str, Path, Any]) -> None:
    base, log, _ = served
    assert httpx.get(f"{base}/health").status_code == 200
    for headers in ({}, _auth("wrong")):
        refused = httpx.get(f"{base}/v1/models", headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {"error": "Unauthorized"}
        chat = httpx.post(
            f"{base}/v1/chat/completions",
            headers=headers,
            json={"messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 401
    models = httpx.get(f"{base}/v1/models", headers=_auth()).json()
    assert [m["id"] for m in models["data"]] == ["lab-model"]
    assert models["data"][0]["max_model_len"] == 4096
    assert KEY not in log.read_text()  # the key is never logged


def test_completions_are_deterministic_with_usage(served: tuple[str, Path, Any]) -> None:
    base, _, _ = served

    def chat(content: str) -> dict[str, Any]:
        response = httpx.post(
            f"{base}/v1/chat/completions",
            headers=_auth(),
            json={
                "model": "lab-model",
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 7,
            },
        )
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc

    first, again, other = chat("hello there"), chat("hello there"), chat("something else")
    text = first["choices"][0]["message"]["content"]
    assert len(text.split()) == 7
    assert text == again["choices"][0]["message"]["content"]
    assert text != other["choices"][0]["message"]["content"]
    assert first["usage"] == {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}
    plain = httpx.post(
        f"{base}/v1/completions",
        headers=_auth(),
        json={"model": "lab-model", "prompt": "abc", "max_tokens": 2},
    ).json()
    assert plain["object"] == "text_completion" and len(plain["choices"][0]["text"].split()) == 2
    unknown = httpx.post(
        f"{base}/v1/completions", headers=_auth(), json={"model": "nope", "prompt": "abc"}
    )
    assert unknown.status_code == 404
    too_long = httpx.post(
        f"{base}/v1/completions", headers=_auth(), json={"prompt": "abc", "max_tokens": 5000}
    )
    assert too_long.status_code == 400 and "maximum context length is 4096" in too_long.text


def test_streaming_sends_the_same_text_as_events(served: tuple[str, Path, Any]) -> None:
    base, _, _ = served
    body = {
        "model": "lab-model",
        "messages": [{"role": "user", "content": "stream me"}],
        "max_tokens": 5,
    }
    whole = httpx.post(f"{base}/v1/chat/completions", headers=_auth(), json=body).json()
    events = []
    with httpx.stream(
        "POST",
        f"{base}/v1/chat/completions",
        headers=_auth(),
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_metrics_carry_vllms_names_and_count_tokens(served: tuple[str, Path, Any]) -> None:
    base, _, _ = served
    httpx.post(
        f"{base}/v1/completions", headers=_auth(), json={"prompt": "12345678", "max_tokens": 6}
    )
    text = httpx.get(f"{base}/metrics").text  # no auth, as vLLM
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    labels = '{engine="0",model_name="lab-model"}'
    assert samples[f"vllm:prompt_tokens_total{labels}"] == 2.0
    assert samples[f"vllm:generation_tokens_total{labels}"] == 6.0
    assert samples[f"vllm:num_requests_running{labels}"] == 0.0
    assert f"vllm:kv_cache_usage_perc{labels}" in samples
    assert "vllm:gpu_cache_usage_perc" not in text  # hidden from 0.10 on
    assert (
        samples[
            'vllm:time_to_first_token_seconds_bucket{engine="0",model_name="lab-model",le="+Inf"}'
        ]
        == 1.0
    )
    assert samples[f"vllm:e2e_request_latency_seconds_count{labels}"] == 1.0
    assert "# TYPE vllm:time_to_first_token_seconds histogram" in text


def test_older_versions_expose_the_old_cache_metric() -> None:
    from ironserve.lab.engine import server

    settings = server.Settings(
        served_names=["m"], root="/m", max_model_len=10, api_key=None, version="0.9.2"
    )
    text = server.Metrics(settings).render()
    assert 'vllm:gpu_cache_usage_perc{model_name="m"} 0.0' in text
    assert "kv_cache_usage_perc" not in text


def test_the_log_shows_the_load_then_the_server(served: tuple[str, Path, Any]) -> None:
    _, log, _ = served
    text = log.read_text()
    assert "Loading safetensors checkpoint shards: 100% Completed | 4/4" in text
    assert text.index("Loading safetensors") < text.index("Uvicorn running on")


# -- SGLang multi-node -------------------------------------------------------------------------


def test_sglang_ranks_meet_at_the_init_address_and_rank_0_serves(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    init, port = _free_port(), _free_port()
    common = [
        "--model-path",
        str(model),
        "--tp-size",
        "4",
        "--nnodes",
        "2",
        "--dist-init-addr",
        f"127.0.0.1:{init}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--served-model-name",
        "sg",
    ]
    env = _env(IRONSERVE_LAB_ENGINE_VERSION="0.5.4", IRONSERVE_LAB_LOAD_SECONDS="0.2")
    module = [sys.executable, "-m", "ironserve.lab.engine.sglang_cli"]
    # Rank 1 first: it retries until rank 0 listens.
    rank1 = subprocess.Popen(
        [*module, *common, "--node-rank", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rank0 = subprocess.Popen(
        [*module, *common, "--node-rank", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/completions",
                    headers=_auth(),
                    json={"prompt": "x", "max_tokens": 2},
                )
                break
            except httpx.TransportError:
                assert rank0.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["model"] == "sg"
        assert rank1.poll() is None  # a non-zero rank stays up while rank 0 does
        rank0.terminate()
        rank0.wait(timeout=10)
        assert rank1.wait(timeout=10) == 1  # ...and goes when rank 0 goes
        assert rank1.stdout is not None
        assert "rank 0 went away" in rank1.stdout.read()
    finally:
        for proc in (rank0, rank1):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sglang_rendezvous_names_the_missing_rank(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    done = _run(
        "sglang_cli",
        [
            "--model-path",
            str(model),
            "--tp-size",
            "2",
            "--nnodes",
            "3",
            "--node-rank",
            "0",
            "--dist-init-addr",
            f"127.0.0.1:{_free_port()}",
        ],
        IRONSERVE_LAB_ENGINE_VERSION="0.5.4",
        IRONSERVE_LAB_RENDEZVOUS_SECONDS="1",
    )
    assert done.returncode == 1
    assert "rank(s) [1, 2] never joined" in done.stderr


# -- the image recipe -----------------------------------------------------------------------


def test_the_image_carries_the_engine_and_the_flag_tables() -> None:
    files = engine_image._engine_files()
    assert "python/ironserve/lab/engine/vllm_cli.py" in files
    assert "python/sglang/launch_server.py" in files
    table = json.loads(files["python/ironserve/catalog/data/engines/vllm.json"][0])
    assert "0.11.0" in table["versions"]
    assert "ironserve.lab.engine.vllm_cli" in files["vllm"][0].decode()
    assert engine_image.engine_tag("ray:x") == engine_image.engine_tag("ray:x")
    assert engine_image.engine_tag("ray:x") != engine_image.engine_tag("ray:y")
    # The real vLLM, vLLM on Ray (the stand-in) and SGLang's default (the stand-in).
    assert engine_image.wanted_versions()[:5] == [
        ("vllm", "0.32.0"),
        ("vllm", "0.11.0"),
        ("sglang", "0.5.23"),
        ("trtllm", "1.2.1"),
        ("vllm_ascend", "0.23.0.post1"),
    ]
    # Each stand-in is published under the name its builder pulls (catalog/engines.py image()).
    assert "ironserve.lab.engine.trtllm_cli" in files["trtllm-serve"][0].decode()
    assert "python/ironserve/catalog/data/engines/trtllm.json" in files
    for kind, version in engine_image.wanted_versions()[3:5]:
        image = engine_image.EngineImage(kind, version, "local", engine_image.REPOSITORIES[kind])
        assert image.reference == ENGINES[EngineKind(kind)].image(version)
        assert image.reference.endswith(f":{image.tag}")  # what lab/registry.py pushes


def test_the_registry_push_uses_the_images_own_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT-LLM's tags carry no "v": the stand-in goes in as the builders name it."""
    from ironserve.lab import registry, registry_push

    calls: list[tuple[str, ...]] = []

    def put(client: Any, local: str, url: str, repository: str, tag: str) -> str:
        calls.append((local, url, repository, tag))
        return "sha256:" + "a" * 64

    monkeypatch.setattr(registry_push, "push", put)
    image = engine_image.EngineImage(
        "trtllm", "1.2.1", "local", engine_image.REPOSITORIES["trtllm"]
    )
    assert registry.push(object(), image, 5999) == "sha256:" + "a" * 64
    assert calls == [
        ("local", "http://127.0.0.1:5999", "nvcr.io/nvidia/tensorrt-llm/release", "1.2.1")
    ]
