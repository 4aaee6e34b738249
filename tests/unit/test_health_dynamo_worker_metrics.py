"""Each Dynamo worker's own /metrics (``cluster.dynamo_worker_metrics``): the node-side read (the
fact's real command, with curl, against the lab's captured pages), the verdicts on the lab's real
mocker workers, errors and KV pressure by the shared rule, unreadable pages, and the rows the
cluster tier gives per node, pool and worker."""

from __future__ import annotations

import http.server
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironserve.config.loader import load_cluster
from ironserve.engines.dynamo import Component
from ironserve.facts.engine import parse_worker_metrics, worker_metrics_command
from ironserve.health import cluster_tier as ct
from ironserve.health import dynamo_worker_metrics as wm
from ironserve.health.model import RUNBOOKS, Status
from ironserve.rules import serving
from ironserve.runbooks import load_all

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "dynamo"
PREFILL = Component(
    container="ironserve-default-prefill-0", label="prefill worker 0", pool="prefill",
    system_port=18100,
)  # fmt: skip
DECODE = PREFILL.model_copy(
    update={"container": "ironserve-default-decode-0", "label": "decode worker 0", "pool": "decode"}
)
KV = 'vllm:kv_cache_usage_perc{engine="0",model_name="SmolLM2-135M-Instruct"} '
WAITING = 'vllm:num_requests_waiting{engine="0",model_name="SmolLM2-135M-Instruct"} '
# Dynamo's work-handler error counter as its source creates it (an IntCounterVec over
# `error_type`, the endpoint's labels added); absent from a worker that never failed.
REQUESTS_LINE = (
    'dynamo_component_requests_total{dynamo_component="backend",dynamo_endpoint="generate",'
    'dynamo_namespace="default",worker_id="6a6ca23e0cd05608"} 2\n'
)
ERROR_LINE = (
    'dynamo_component_errors_total{dynamo_component="backend",dynamo_endpoint="generate",'
    'dynamo_namespace="default",error_type="generate",worker_id="6a6ca23e0cd05608"} 3\n'
)


def _page(name: str) -> str:
    return (FIXTURES / name).read_text()


def _judge(text: str, worker: Component = DECODE) -> ct.CheckResult:
    return _runbook_ok(wm.judge_worker("labgpu-3", worker, (200, text)))


def _runbook_ok(result: ct.CheckResult) -> ct.CheckResult:
    """A result pointing to a runbook names one that exists and lists the check."""
    if result.runbook:
        assert result.runbook in RUNBOOKS, result
        assert result.check in load_all()[result.runbook].checks, result
    return result


@pytest.fixture
def served_page() -> Iterator[int]:
    """The lab's decode worker's captured page served at /metrics on a loopback port."""
    body = _page("worker-metrics-decode-ok.txt").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_the_node_side_read_keeps_dynamos_and_the_engines_samples(served_page: int) -> None:
    closed = served_page + 1 if served_page < 65535 else served_page - 1
    out = subprocess.run(
        ["bash", "-c", worker_metrics_command((served_page, closed))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    found = parse_worker_metrics(out.splitlines())
    assert found is not None and found[closed] == (0, "")
    code, text = found[served_page]
    lines = text.splitlines()
    assert code == 200 and lines
    assert all(line.startswith(("dynamo_component_", "vllm:")) for line in lines), lines
    assert not [line for line in lines if "_bucket{" in line]
    assert KV + "0" in lines
    # ...and the judge reads the same from what came back as from the whole page.
    assert wm.worker_metrics(text) == wm.worker_metrics(_page("worker-metrics-decode-ok.txt"))
    assert parse_worker_metrics(["@@no-curl"]) is None


def test_the_labs_mocker_workers_are_ok() -> None:
    # The decode side exports vLLM's series (the mocker's), the prefill side none: judged on
    # its errors alone.
    for worker, name, kv in (
        (PREFILL, "prefill", ""),
        (DECODE, "decode", ", KV cache 0%, 0 waiting"),
    ):
        result = _judge(_page(f"worker-metrics-{name}-ok.txt"), worker)
        assert (result.check, result.status) == ("cluster.dynamo_worker_metrics", Status.OK)
        assert result.observed == (
            f"{worker.label} ({worker.container}) /metrics on port 18100: 2 requests to "
            f"generate, 0 errors{kv}"
        )


def test_errors_since_the_worker_started_warn_by_type() -> None:
    text = _page("worker-metrics-decode-ok.txt") + ERROR_LINE
    result = _judge(text)
    assert (result.status, result.runbook) == (Status.WARN, "dynamo-kv-transfer")
    assert "3 errors since start (generate 3)" in result.observed
    assert "docker logs ironserve-default-decode-0" in result.action
    # An aggregated worker's errors are its engine's: its log, no KV handover runbook.
    agg = _judge(text, DECODE.model_copy(update={"pool": "worker"}))
    assert (agg.status, agg.runbook) == (Status.WARN, "")


@pytest.mark.parametrize(
    ("errors", "requests", "status"),
    [
        (2, 2, Status.OK),  # under ERRORS_MIN: a hung-up client or two
        (3, 400, Status.OK),  # under ERROR_SHARE of the requests
        (4, 400, Status.WARN),  # 1% of them
        (3, 2, Status.WARN),
    ],
)
def test_a_few_errors_among_many_requests_are_reported_not_warned(
    errors: int, requests: int, status: Status
) -> None:
    text = _page("worker-metrics-decode-ok.txt") + ERROR_LINE.replace("} 3\n", f"}} {errors}\n")
    assert REQUESTS_LINE in text
    result = _judge(text.replace(REQUESTS_LINE, REQUESTS_LINE[:-2] + f"{requests}\n"))
    assert result.status is status
    assert f"{requests} requests to generate, {errors} errors since start" in result.observed


def test_kv_pressure_is_the_shared_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _page("worker-metrics-decode-ok.txt")
    assert KV + "0\n" in text and WAITING + "0\n" in text

    def judged(usage: float, waiting: int) -> ct.CheckResult:
        changed = text.replace(KV + "0\n", f"{KV}{usage}\n")
        return _judge(changed.replace(WAITING + "0\n", f"{WAITING}{waiting}\n"))

    full = judged(0.97, 0)
    assert (full.status, full.runbook) == (Status.WARN, "kv-cache-full")
    assert "KV cache 97%, 0 waiting" in full.observed
    assert judged(0.85, 2).status is Status.WARN  # a queue on a busy cache
    assert judged(0.85, 0).status is Status.OK
    monkeypatch.setattr(serving, "KV_FULL", 0.5)  # the rule lives in rules/serving.py only
    assert judged(0.6, 0).status is Status.WARN


def test_unreadable_metrics_say_why() -> None:
    silent = _runbook_ok(wm.judge_worker("labgpu-3", DECODE, (0, "")))
    assert (silent.status, silent.runbook) == (Status.FAIL, "dynamo-decode-lost")
    assert silent.observed.endswith("/metrics on port 18100: no answer (its /health answers)")
    refused = _runbook_ok(wm.judge_worker("labgpu-2", PREFILL, (503, "")))
    assert (refused.status, refused.runbook) == (Status.FAIL, "dynamo-prefill-lost")
    assert "HTTP 503" in refused.observed
    # Something answers, but not a Dynamo system server: no dynamo_component_* series.
    other = _judge(f"{KV}0.1\n")
    assert other.status is Status.UNKNOWN and "no dynamo_component_* series" in other.observed
    unread = wm.judge_worker("labgpu-3", DECODE, None, "system /metrics: timed out")
    assert unread.status is Status.UNKNOWN and "timed out" in unread.observed


@pytest.fixture(scope="module")
def disagg() -> ct.GroupPlan:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Monkey-patching ssl")
        cluster = load_cluster(
            str(ROOT / "inventories" / "h100x8_2node_qwen3_32b_vllm_dynamo_kv.py")
        )
    return ct.group_plans(cluster)[0]


def _rows(gp: ct.GroupPlan, facts: ct.NodeFacts, node: str) -> list[ct.CheckResult]:
    results = ct.judge_dynamo_node(gp, node, facts, None)
    return [r for r in results if r.check == wm.CHECK]


def test_the_cluster_tier_names_node_pool_and_worker(disagg: ct.GroupPlan) -> None:
    node = "h100-decode"
    ports = [int(c.system_port or 0) for c in disagg.components(node) if c.system_port]
    page = _page("worker-metrics-decode-ok.txt")
    pages = {p: (200, page) for p in ports}
    pages[ports[1]] = (200, page + ERROR_LINE)
    facts = ct.NodeFacts(
        reachable=True,
        containers={c.container: _running() for c in disagg.components(node)},
        system_health={p: 200 for p in ports} | {ports[3]: 0},
        worker_metrics=pages,
    )
    rows = _rows(disagg, facts, node)
    # One row per worker whose /health answers (worker 3's silence is dynamo_worker_health's).
    assert [(r.node, r.status) for r in rows] == [
        (node, Status.OK),
        (node, Status.WARN),
        (node, Status.OK),
    ]
    assert rows[1].observed.startswith(
        "decode worker 1 (ironserve-default-decode-1) /metrics on port 18101: 2 requests to "
        "generate, 3 errors since start"
    )
    # The fact failed (a timeout): UNKNOWN with its error, never OK.
    facts.worker_metrics, facts.errors = None, ["system /metrics: timed out after 40s"]
    assert {(r.status, "timed out" in r.observed) for r in _rows(disagg, facts, node)} == {
        (Status.UNKNOWN, True)
    }


def _running() -> dict[str, object]:
    from ironserve.facts.engine import parse_container

    doc = '{"Labels": {}, "State": {"Running": true, "Status": "running"}, "RestartCount": 0}'
    return parse_container(["@@inspect", doc])


class _Host:
    """A pyinfra host that answers facts from a table and records what it was asked."""

    name = "h100-decode"

    def __init__(self, health: dict[int, int]) -> None:
        self.health = health
        self.asked: list[tuple[str, object]] = []

    def get_fact(self, fact: type, **kwargs: object) -> object:
        self.asked.append((fact.__name__, kwargs.get("ports")))
        if fact.__name__ == "EngineContainer":
            return _running()
        if fact.__name__ == "DynamoSystemHealth":
            return self.health
        ports = kwargs["ports"]
        assert isinstance(ports, tuple)
        return {p: (200, _page("worker-metrics-decode-ok.txt")) for p in ports}


def test_only_workers_whose_health_answers_are_read_in_one_call(disagg: ct.GroupPlan) -> None:
    host = _Host({18100: 200, 18101: 0, 18102: 200, 18103: 503})
    facts = ct.NodeFacts(reachable=True)
    ct._gather_dynamo(host, disagg, facts)
    metrics_calls = [ports for name, ports in host.asked if name == "DynamoWorkerMetrics"]
    assert metrics_calls == [(18100, 18102)]
    assert facts.worker_metrics is not None and set(facts.worker_metrics) == {18100, 18102}
