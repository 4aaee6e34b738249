"""Serving pressure: KV-cache usage and the request queue, for ``ironserve health``
(serving.metrics) and the Prometheus alert rules (roles/monitoring) alike.

The rule: the KV cache at or above :data:`KV_FULL`, or requests waiting (more than
:data:`QUEUE_MAX`) while the cache is at or above :data:`KV_BUSY`, is pressure (health: WARN,
runbook kv-cache-full; Prometheus: an alert after it lasts). The metric names are the engines'
own (facts/metrics.py): vLLM ``vllm:kv_cache_usage_perc`` (and the deprecated
``vllm:gpu_cache_usage_perc``), ``vllm:num_requests_waiting``; SGLang ``sglang:token_usage``,
``sglang:num_queue_reqs``. Usage is a fraction (1 = full).
"""

from __future__ import annotations

from dataclasses import dataclass

from ironserve.facts.metrics import KV_USAGE, WAITING

KV_FULL = 0.95  # KV-cache usage at or above: pressure on its own
KV_BUSY = 0.8  # ...or requests waiting while the cache is this full
QUEUE_MAX = 0  # waiting requests above this count as a queue
# How long Prometheus waits before an alert fires (health judges one scrape).
KV_FULL_FOR = "5m"
QUEUE_FOR = "10m"


def kv_pressure(kv_usage: float | None, waiting: float | None) -> bool:
    """Whether the engine is short of KV cache (None usage: not known, so not pressure)."""
    if kv_usage is None:
        return False
    return kv_usage >= KV_FULL or ((waiting or 0.0) > QUEUE_MAX and kv_usage >= KV_BUSY)


def expected_text() -> str:
    return f"kv < {KV_FULL:.0%}, no queue on a cache over {KV_BUSY:.0%}"


def _any_of(names: tuple[str, ...], job: str) -> str:
    return " or ".join(f'{name}{{job="{job}"}}' for name in names)


def kv_usage_promql(job: str = "engine", by: str = "node, group") -> str:
    """The fullest KV cache per ``by``, under every engine's name."""
    return f"max by ({by}) ({_any_of(KV_USAGE, job)})"


def waiting_promql(job: str = "engine", by: str = "node, group") -> str:
    """Requests waiting per ``by``, under every engine's name."""
    return f"sum by ({by}) ({_any_of(WAITING, job)})"


@dataclass(frozen=True)
class AlertExpr:
    name: str
    expr: str
    duration: str
    summary: str


def alert_exprs(job: str = "engine") -> list[AlertExpr]:
    """The PromQL of :func:`kv_pressure`: one alert per half of the rule."""
    by = "node, group"
    kv = kv_usage_promql(job, by)
    return [
        AlertExpr(
            "IronserveKvCacheFull",
            f"{kv} >= {KV_FULL:g}",
            KV_FULL_FOR,
            f"KV cache at or above {KV_FULL:.0%}",
        ),
        AlertExpr(
            "IronserveRequestsQueueing",
            f"({waiting_promql(job, by)} > {QUEUE_MAX}) and on ({by}) ({kv} >= {KV_BUSY:g})",
            QUEUE_FOR,
            f"requests waiting on a KV cache at or above {KV_BUSY:.0%}",
        ),
    ]
