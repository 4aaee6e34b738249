"""Dynamo's own verdicts (pure): the control plane and the pools' registrations (cluster tier,
from facts/dynamo.py's DynamoDiscovery read on the head), and the frontend's metrics (serving
tier, its ``dynamo_frontend_*`` families).

- ``cluster.dynamo_control_plane`` (the head): etcd answers its v3 range and NATS its
  ``/healthz``; either down is FAIL naming it (runbook dynamo-control-plane): workers cannot
  renew their leases, so they exit and crash-loop until it is back;
- ``cluster.dynamo_discovery`` (each worker node): every *running* planned worker has its
  ``generate`` endpoint registered in etcd (the frontend's view of the pools), matched by the
  address and system port its model card names. Running but not registered is FAIL naming the
  node, the pool and the worker (a hung worker whose lease expired, or one that lost etcd);
- ``serving.dynamo_metrics``: the frontend's ``/metrics`` readable, with
  ``dynamo_frontend_model_ready`` 1 for the served name (0 or absent: the frontend has no
  complete set of workers for it, and refuses requests with 503: FAIL), and nothing pending in
  the KV router's queue (``..._router_queue_pending_requests`` per worker type: requests held
  back because every worker of that pool is at capacity, what an operator pages on: WARN).
  ``dynamo_frontend_queued_requests`` (received, no first token yet) is only stated: the
  serving tier's own completion runs beside the scrape and counts there. Requests that failed
  since the frontend started are stated, by error type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ironserve.engines.dynamo import Component
from ironserve.facts.dynamo import registered_at
from ironserve.facts.metrics import Sample, parse_prometheus
from ironserve.health.model import CheckResult, Status

CONTROL_PLANE = "dynamo-control-plane"
RESTART = "pyinfra -y INVENTORY deploys/restart.py"
MODEL_READY = "dynamo_frontend_model_ready"
QUEUED = "dynamo_frontend_queued_requests"
ROUTER_PENDING = "dynamo_frontend_router_queue_pending_requests"
REQUESTS = "dynamo_frontend_requests_total"


def pool_runbook(pool: str | None) -> str:
    """The runbook of a lost worker of ``pool`` (the aggregated pool's is the generic one)."""
    return {"prefill": "dynamo-prefill-lost", "decode": "dynamo-decode-lost"}.get(
        pool or "", "engine-container"
    )


def control_plane(node: str, etcd: str, nats: str, found: dict[str, Any] | None) -> CheckResult:
    """etcd at ``etcd`` and NATS at ``nats`` (its monitoring URL), as the head's curl saw them."""
    check, tier = "cluster.dynamo_control_plane", "cluster"
    expected = f"etcd answers at {etcd}, NATS /healthz 200 at {nats}"
    if found is None:
        return CheckResult(
            check,
            tier,
            node,
            Status.UNKNOWN,
            "not asked (no curl on the head)",
            expected,
            "install curl on the head, or ask etcd and NATS by hand",
            CONTROL_PLANE,
        )
    down = []
    if found.get("etcd") is not None:
        down.append(f"etcd at {etcd} does not answer ({found['etcd']})")
    if found.get("nats") != 200:
        code = found.get("nats")
        answer = "no answer" if not code else f"HTTP {code}"
        down.append(f"NATS at {nats} /healthz: {answer}")
    if down:
        return CheckResult(
            check,
            tier,
            node,
            Status.FAIL,
            "; ".join(down),
            expected,
            f"start it: {RESTART} (read its `docker logs` first)",
            CONTROL_PLANE,
        )
    count = len({r["instance_id"] for r in found.get("registrations") or []})
    return CheckResult(
        check, tier, node, Status.OK, f"etcd and NATS answer, {count} instances", expected
    )


def registration(
    node: str, address: str, worker: Component, found: dict[str, Any] | None
) -> CheckResult:
    """Whether a running worker of ``node`` (at ``address``) is registered in etcd."""
    check, tier = "cluster.dynamo_discovery", "cluster"
    what = f"{worker.label} ({worker.container})"
    where = f"{address}:{worker.system_port}"
    expected = f"{what} registered in etcd (generate endpoint, card at {where})"
    if found is None or found.get("etcd") is not None:
        return CheckResult(
            check,
            tier,
            node,
            Status.UNKNOWN,
            f"{what}: etcd not read (see cluster.dynamo_control_plane)",
            expected,
            "",
            CONTROL_PLANE,
        )
    mine = registered_at(found, address, worker.system_port)
    if not mine:
        return CheckResult(
            check,
            tier,
            node,
            Status.FAIL,
            f"{what} on {node} runs but is not registered: the frontend does not route to the "
            f"{worker.pool} pool's worker",
            expected,
            f"read `docker logs {worker.container}` on {node} (a hung worker loses its lease); "
            f"{RESTART}",
            pool_runbook(worker.pool),
        )
    return CheckResult(
        check, tier, node, Status.OK, f"{what} registered: instance {', '.join(mine)}", expected
    )


# --- the frontend's metrics (serving tier) -----------------------------------------------------


@dataclass(frozen=True)
class FrontendMetrics:
    families: int  # how many dynamo_frontend_* samples
    ready: float | None  # dynamo_frontend_model_ready for the served name (None: absent)
    queued: float  # requests queued in the frontend, for the served name
    pending: dict[str, float]  # the KV router's pending requests by worker type
    succeeded: float
    failed: dict[str, float]  # failed requests since the frontend started, by error type


def frontend_metrics(text: str, served_name: str) -> FrontendMetrics:
    samples = parse_prometheus(text)

    def of(name: str) -> list[Sample]:
        return [s for s in samples if s.name == name and s.labels.get("model") == served_name]

    ready = of(MODEL_READY)
    pending: dict[str, float] = {}
    for s in of(ROUTER_PENDING):
        kind = s.labels.get("worker_type", "?")
        pending[kind] = pending.get(kind, 0.0) + s.value
    failed: dict[str, float] = {}
    succeeded = 0.0
    for s in of(REQUESTS):
        if s.labels.get("status") == "success":
            succeeded += s.value
        elif s.value:
            kind = s.labels.get("error_type") or s.labels.get("status") or "?"
            failed[kind] = failed.get(kind, 0.0) + s.value
    return FrontendMetrics(
        families=sum(1 for s in samples if s.name.startswith("dynamo_frontend_")),
        ready=max(s.value for s in ready) if ready else None,
        queued=sum(s.value for s in of(QUEUED)),
        pending=pending,
        succeeded=succeeded,
        failed=failed,
    )


def _counts(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(values.items()))


def judge_frontend(
    node: str, served_name: str, m: FrontendMetrics, runbooks: Sequence[str]
) -> CheckResult:
    """``runbooks``: where a model the frontend does not serve points (the group's worker pools'
    lost-worker runbooks, the first named)."""
    check, tier = "serving.dynamo_metrics", "serving"
    expected = f"{MODEL_READY}{{model={served_name!r}}} 1, nothing pending in the router"
    errors = f"; failed since start: {_counts(m.failed)}" if m.failed else ""
    if not m.families:
        return CheckResult(
            check,
            tier,
            node,
            Status.UNKNOWN,
            "no dynamo_frontend_* metrics",
            expected,
            "is the endpoint Dynamo's frontend?",
            "endpoint-down",
        )
    if not m.ready:
        state = "absent" if m.ready is None else "0"
        return CheckResult(
            check,
            tier,
            node,
            Status.FAIL,
            f"{MODEL_READY} for {served_name} {state}: the frontend refuses requests (503), a "
            f"pool has no registered worker{errors}",
            expected,
            "see cluster.dynamo_discovery and cluster.engine_containers: they name the pool "
            f"and the worker; {RESTART}",
            runbooks[0] if runbooks else "engine-container",
        )
    busy = {k: v for k, v in m.pending.items() if v > 0}
    observed = (
        f"{served_name} ready, {m.queued:g} queued"
        + (f", router pending {_counts(m.pending)}" if m.pending else "")
        + f", {m.succeeded:g} succeeded{errors}"
    )
    if busy:
        return CheckResult(
            check,
            tier,
            node,
            Status.WARN,
            observed,
            expected,
            "requests wait for a worker: read the workers' KV usage (their /metrics) and add "
            "workers to the busy pool",
            "kv-cache-full",
        )
    return CheckResult(check, tier, node, Status.OK, observed, expected)
