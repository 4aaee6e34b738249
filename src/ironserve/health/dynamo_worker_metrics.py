"""Each Dynamo worker's own ``/metrics`` judged (pure): ``cluster.dynamo_worker_metrics``, one
row per running worker whose system ``/health`` answers 200 (a worker that does not is
``cluster.dynamo_worker_health``'s FAIL already), read on the node by facts/engine.py
``DynamoWorkerMetrics`` on the same system port (``DYN_SYSTEM_PORT``).

What an operator pages on, from one scrape:

- unreadable: ``/metrics`` does not answer or not with 200 while ``/health`` does (FAIL); a page
  without Dynamo's ``dynamo_component_*`` families (UNKNOWN: not a Dynamo system server);
- errors: ``dynamo_component_errors_total`` (Dynamo's work handler, one series per
  ``error_type``: ``generate``, ``publish_response``, ...; absent until the first error) since
  the worker started: WARN with the counts by type once they are at least
  :data:`ERRORS_MIN` and :data:`ERROR_SHARE` of its requests (a client that hangs up mid-stream,
  or a health probe timing out on a loaded node, leaves an error or two on a sound worker; a
  failing handover fails most requests). The observed text always gives the count. The counter
  restarts with the worker, so a worker restarted by deploys/restart.py is clean again;
- KV pressure: the engine's KV-cache usage and waiting requests (vLLM's ``vllm:`` series, which a
  ``dynamo.vllm`` worker and Dynamo's mocker export; SGLang's ``sglang:``; facts/metrics.py
  reads every name) judged by the one rule, rules/serving.py ``kv_pressure`` (WARN,
  kv-cache-full). A worker without them is judged on its errors alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ironserve.engines.dynamo import Component
from ironserve.facts.metrics import engine_metrics, parse_prometheus
from ironserve.health.dynamo_checks import RESTART, pool_runbook
from ironserve.health.model import CheckResult, Status
from ironserve.rules.serving import expected_text, kv_pressure

CHECK = "cluster.dynamo_worker_metrics"
COMPONENT_PREFIX = "dynamo_component_"
ERRORS = "dynamo_component_errors_total"
REQUESTS = "dynamo_component_requests_total"
ERRORS_MIN = 3  # errors since the worker started, at least...
ERROR_SHARE = 0.01  # ...and at least this share of its requests: WARN


@dataclass(frozen=True)
class WorkerMetrics:
    families: int  # how many dynamo_component_* samples (histogram buckets not counted)
    requests: float  # requests its generate endpoint handled since it started
    errors: dict[str, float]  # errors since it started, by error type (non-zero only)
    kv_usage: float | None  # the engine's KV-cache usage, 0..1 (None: not exported)
    waiting: float | None  # the engine's waiting requests

    @property
    def error_count(self) -> float:
        return sum(self.errors.values())

    @property
    def failing(self) -> bool:
        count = self.error_count
        return count >= ERRORS_MIN and count >= ERROR_SHARE * self.requests


def worker_metrics(text: str) -> WorkerMetrics:
    samples = parse_prometheus(text)
    errors: dict[str, float] = {}
    for s in samples:
        if s.name == ERRORS and s.value:
            kind = s.labels.get("error_type") or "?"
            errors[kind] = errors.get(kind, 0.0) + s.value
    engine = engine_metrics(text)
    return WorkerMetrics(
        families=sum(
            1
            for s in samples
            if s.name.startswith(COMPONENT_PREFIX) and not s.name.endswith("_bucket")
        ),
        requests=sum(
            s.value
            for s in samples
            if s.name == REQUESTS and s.labels.get("dynamo_endpoint") == "generate"
        ),
        errors=errors,
        kv_usage=engine.kv_usage,
        waiting=engine.waiting,
    )


def _error_runbook(worker: Component) -> str:
    """A disaggregated pool's worker failing requests while it runs: the KV handover is the
    suspect (dynamo-kv-transfer); an aggregated worker's errors are its engine's, read in its
    log (no runbook fits better than the action)."""
    return "dynamo-kv-transfer" if worker.pool in ("prefill", "decode") else ""


def judge_worker(
    node: str, worker: Component, scrape: tuple[int, str] | None, why: str = ""
) -> CheckResult:
    """``scrape``: the worker's ``/metrics`` as the node's curl read it (HTTP status, 0 no
    answer; the kept sample lines); None: not read (``why``, or no curl on the node)."""
    port = worker.system_port
    what = f"{worker.label} ({worker.container}) /metrics on port {port}"
    expected = (
        f"{what} readable, {ERRORS} under {ERRORS_MIN} or {ERROR_SHARE:.0%} of requests, "
        f"{expected_text()}"
    )
    if scrape is None:
        return CheckResult(
            CHECK,
            "cluster",
            node,
            Status.UNKNOWN,
            f"{what}: not read ({why or 'no curl on the node'})",
            expected,
            f"read it by hand: curl -s 127.0.0.1:{port}/metrics on {node}",
        )
    code, text = scrape
    if code != 200:
        answer = "no answer" if code == 0 else f"HTTP {code}"
        return CheckResult(
            CHECK,
            "cluster",
            node,
            Status.FAIL,
            f"{what}: {answer} (its /health answers)",
            expected,
            f"read `docker logs {worker.container}` on {node}; {RESTART}",
            pool_runbook(worker.pool),
        )
    m = worker_metrics(text)
    if not m.families:
        return CheckResult(
            CHECK,
            "cluster",
            node,
            Status.UNKNOWN,
            f"{what}: no {COMPONENT_PREFIX}* series",
            expected,
            f"is port {port} the worker's DYN_SYSTEM_PORT? (ironserve plan lists its ports)",
        )
    kv = "" if m.kv_usage is None else f", KV cache {m.kv_usage:.0%}, {m.waiting or 0:g} waiting"
    errors = ", ".join(f"{k} {v:g}" for k, v in sorted(m.errors.items()))
    observed = (
        f"{what}: {m.requests:g} requests to generate, "
        + (f"{m.error_count:g} errors since start ({errors})" if m.errors else "0 errors")
        + kv
    )
    if m.failing:
        return CheckResult(
            CHECK,
            "cluster",
            node,
            Status.WARN,
            observed,
            expected,
            f"the worker fails requests: read `docker logs {worker.container}` on {node} for "
            f"the error; {RESTART} resets the count",
            _error_runbook(worker),
        )
    if kv_pressure(m.kv_usage, m.waiting):
        return CheckResult(
            CHECK,
            "cluster",
            node,
            Status.WARN,
            observed,
            expected,
            f"the {worker.pool} pool is short of KV cache: add workers to it or lower "
            "the concurrent sequences",
            "kv-cache-full",
        )
    return CheckResult(CHECK, "cluster", node, Status.OK, observed, expected)
