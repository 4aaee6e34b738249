"""`ironserve bench` against a loopback fake OpenAI streaming server with fixed token timing: the
computed TTFT, TPOT, ITL, E2E latency and throughput must match the timing the server used."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from ironserve.bench.dataset import random_requests
from ironserve.bench.metrics import RequestResult, percentile, summarize
from ironserve.bench.runner import Target, arrival_gaps, run_sweep
from ironserve.bench.target import endpoint_of
from ironserve.cli import app
from ironserve.config import load_cluster

FIRST_TOKEN_S = 0.060  # the fake server's time to first token
TOKEN_GAP_S = 0.020  # ...and between later tokens
KEY = "bench-test-key"


class _FakeOpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the stream ends when the connection closes
    seen: ClassVar[list[dict[str, Any]]] = []
    # Requests in flight now and the most at once since the last reset: the client's concurrency,
    # observed by the server rather than inferred from timing.
    in_flight: ClassVar[int] = 0
    peak: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            payload = b'{"error": "bad key"}'
            self.send_response(401)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            self._stream(int(body["max_tokens"]))
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def _stream(self, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        time.sleep(FIRST_TOKEN_S)
        for i in range(n):
            if i:
                time.sleep(TOKEN_GAP_S)
            chunk = {"choices": [{"index": 0, "text": f" w{i}"}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def fake_server() -> Iterator[str]:
    _FakeOpenAI.seen = []
    _FakeOpenAI.in_flight = _FakeOpenAI.peak = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(7.6)
    assert percentile(values, 99) == pytest.approx(9.76)
    assert percentile([], 50) == 0.0


def test_summary_from_known_timings() -> None:
    # Two requests: sent at 0, first token at 0.1, then tokens every 0.05 s.
    results = [
        RequestResult(
            sent=0.0,
            ok=True,
            first_token=0.1,
            chunk_times=[0.1, 0.15, 0.2, 0.25],
            done=0.25,
            prompt_tokens=10,
            output_tokens=4,
        ),
        RequestResult(
            sent=0.0,
            ok=True,
            first_token=0.3,
            chunk_times=[0.3, 0.4],
            done=0.4,
            prompt_tokens=10,
            output_tokens=2,
        ),
        RequestResult(sent=0.0, error="HTTP 500: boom"),
    ]
    level = summarize(results, concurrency=2, request_rate=math.inf, duration_s=0.5)
    assert (level.completed, level.failed) == (2, 1)
    assert level.ttft.mean == pytest.approx(200.0)
    assert level.ttft.median == pytest.approx(200.0)
    assert level.tpot.mean == pytest.approx(75.0)  # (50 + 100) / 2
    assert level.itl.median == pytest.approx(50.0)  # gaps 50, 50, 50, 100
    assert level.itl.p99 == pytest.approx(98.5)
    assert level.e2el.mean == pytest.approx(325.0)
    assert level.request_throughput == pytest.approx(4.0)
    assert level.output_throughput == pytest.approx(12.0)
    assert level.total_token_throughput == pytest.approx(52.0)
    assert level.errors == ["HTTP 500: boom"]
    doc = level.as_json()
    assert doc["request_rate"] is None and doc["p99_itl_ms"] == pytest.approx(98.5)


def test_random_dataset_lengths_and_seed() -> None:
    requests = random_requests(50, input_len=100, output_len=20, range_ratio=0.5, seed=3)
    assert all(50 <= r.input_len <= 150 and 10 <= r.output_len <= 30 for r in requests)
    assert all(len(r.prompt.split()) == r.input_len for r in requests)
    assert requests == random_requests(50, 100, 20, 0.5, seed=3)
    assert requests != random_requests(50, 100, 20, 0.5, seed=4)
    with pytest.raises(ValueError):
        random_requests(1, 0, 1)


def test_poisson_arrivals() -> None:
    assert arrival_gaps(4, math.inf, 0) == [0.0] * 4
    gaps = arrival_gaps(4000, 20.0, 1)
    assert sum(gaps) / len(gaps) == pytest.approx(0.05, rel=0.08)
    assert gaps == arrival_gaps(4000, 20.0, 1)


def test_sweep_measures_the_servers_timing(fake_server: str) -> None:
    requests = random_requests(8, input_len=16, output_len=6, seed=0)
    levels = []
    peaks = []
    for concurrency in (1, 4):
        _FakeOpenAI.peak = 0
        levels += run_sweep(Target(fake_server, "fake", KEY), requests, [concurrency])
        peaks.append(_FakeOpenAI.peak)
    assert [lv.concurrency for lv in levels] == [1, 4]
    for level in levels:
        assert (level.completed, level.failed) == (8, 0)
        assert level.total_output_tokens == 48 and level.total_input_tokens == 56
        # A shared machine only ever adds delay (the suite runs beside busy labs), so each figure is
        # bounded below by the server's timing and above only against a unit slip (ms vs s).
        assert FIRST_TOKEN_S * 1000 <= level.ttft.median < FIRST_TOKEN_S * 1000 * 50
        assert TOKEN_GAP_S * 1000 * 0.9 <= level.tpot.median < TOKEN_GAP_S * 1000 * 50
        assert TOKEN_GAP_S * 1000 * 0.9 <= level.itl.median < TOKEN_GAP_S * 1000 * 50
        e2e = (FIRST_TOKEN_S + 5 * TOKEN_GAP_S) * 1000
        assert e2e <= level.e2el.median < e2e * 50
        assert level.ttft.median < level.e2el.median
    # The server saw the client's concurrency: one at a time, then several but never over four (each
    # request streams for 160 ms, so four sent together overlap).
    assert peaks[0] == 1 and 2 <= peaks[1] <= 4
    sent = _FakeOpenAI.seen[0]["body"]
    assert sent["stream"] is True and sent["max_tokens"] == 6 and sent["ignore_eos"] is True
    assert {s["auth"] for s in _FakeOpenAI.seen} == {f"Bearer {KEY}"}


def test_wrong_key_counts_as_failed(fake_server: str) -> None:
    requests = random_requests(2, 4, 2)
    (level,) = run_sweep(Target(fake_server, "fake", "wrong"), requests, [2])
    assert (level.completed, level.failed) == (0, 2)
    assert level.errors and level.errors[0].startswith("HTTP 401")


def _inventory(tmp_path: Path, key: str | None = KEY) -> Path:
    (tmp_path / "group_data").mkdir()
    inv = tmp_path / "site.py"
    inv.write_text(
        'nodes = [("n0", {"ssh_hostname": "10.9.0.5", "node_role": "head", '
        '"node_ip": "10.9.0.5"})]\n'
    )
    data = [
        'model_id = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"',
        'model_served_name = "r1-8b"',
        'accelerator_kind = "l40s-48g"',
        "accelerator_count = 2",
        "engine_port = 8123",
    ]
    if key is not None:
        key_file = tmp_path / "api-key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        data.append(f'serving_api_key_file = "{key_file}"')
    (tmp_path / "group_data" / "site.py").write_text("\n".join(data) + "\n")
    return inv


def test_endpoint_from_the_plan(tmp_path: Path) -> None:
    target = endpoint_of(load_cluster(str(_inventory(tmp_path))))
    assert target == Target("http://10.9.0.5:8123/v1", "r1-8b", KEY)


def test_cli_json_and_plot(tmp_path: Path, fake_server: str) -> None:
    inv = _inventory(tmp_path)
    png = tmp_path / "latency.png"
    args = ["bench", "-i", str(inv), "--endpoint", fake_server, "--concurrency", "1,2"]
    args += ["--num-prompts", "4", "--input-len", "8", "--output-len", "3", "--json"]
    result = CliRunner().invoke(app, [*args, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "r1-8b" and doc["endpoint"] == fake_server
    assert [lv["concurrency"] for lv in doc["levels"]] == [1, 2]
    assert all(lv["completed"] == 4 and lv["median_ttft_ms"] >= 60 for lv in doc["levels"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_and_bad_input(tmp_path: Path, fake_server: str) -> None:
    inv = _inventory(tmp_path)
    runner = CliRunner()
    args = ["bench", "-i", str(inv), "--endpoint", fake_server, "--num-prompts", "2"]
    result = runner.invoke(app, [*args, "--concurrency", "2", "--output-len", "2"])
    assert result.exit_code == 0, result.output
    assert "Median TTFT (ms)" in result.stdout and "P99 ITL (ms)" in result.stdout
    bad = runner.invoke(app, [*args, "--concurrency", "0,x"])
    assert bad.exit_code == 2 and "--concurrency" in bad.stderr
    missing = runner.invoke(app, ["bench", "-i", str(tmp_path / "nope.py")])
    assert missing.exit_code == 2


def test_request_rate_spaces_the_arrivals(fake_server: str) -> None:
    requests = random_requests(6, input_len=4, output_len=1, seed=0)
    gaps = arrival_gaps(6, 20.0, 7)
    (level,) = run_sweep(Target(fake_server, "fake", KEY), requests, [6], request_rate=20.0, seed=7)
    assert level.completed == 6 and level.request_rate == 20.0
    # The last request leaves after every gap, then takes at least the first-token time.
    assert level.duration_s >= sum(gaps) + FIRST_TOKEN_S


def test_a_dynamo_groups_endpoint_is_its_frontend_behind_the_gateway(
    tmp_path: Path, fake_server: str
) -> None:
    """`ironserve bench` on a Dynamo group: the frontend's node (the head) at the group's API
    port, where the gateway checks the key in front of the frontend; the model is the name the
    workers register."""
    from ironserve.config import build_cluster
    from ironserve.config.inventory import HostRecord

    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    group = {
        "model_id": "Qwen/Qwen3-32B",
        "model_served_name": "qwen3",
        "engine_kind": "dynamo",
        "dynamo_mode": "disaggregated",
        "accelerator_kind": "h100-80g",
        "accelerator_count": 8,
        "network_socket_ifname": "eth0",
        "network_ib_hcas": ["mlx5_0"],
        "serving_api_key_file": str(key_file),
    }
    records = [
        HostRecord(
            name,
            ("site",),
            {**group, "node_role": role, "node_ip": ip, "node_dynamo_pool": pool},
        )
        for name, role, ip, pool in [
            ("n0", "head", "10.0.0.10", "prefill"),
            ("n1", "worker", "10.0.0.11", "decode"),
        ]
    ]
    target = endpoint_of(build_cluster(records))
    assert target == Target("http://10.0.0.10:8000/v1", "qwen3", KEY)
    # The sweep runs unchanged against it (here the loopback fake in its place).
    requests = random_requests(2, 8, 3, seed=1)
    fake = Target(fake_server, target.model, target.api_key)
    (summary,) = run_sweep(fake, requests, [1], timeout_s=30.0)
    assert summary.completed == 2 and summary.failed == 0
    assert {seen["body"]["model"] for seen in _FakeOpenAI.seen} == {"qwen3"}
