"""An engine's ``/metrics`` (Prometheus text) as data: running and waiting requests and KV-cache
usage, under every name the engines have used (../shared/reference/outputs/vllm.md 1a-1e):

- vLLM: ``vllm:num_requests_running``, ``vllm:num_requests_waiting`` and the KV cache as
  ``vllm:kv_cache_usage_perc`` (vLLM >= 0.10) or the deprecated ``vllm:gpu_cache_usage_perc``
  (hidden from 0.11 on unless ``--show-hidden-metrics-for-version``); labels ``model_name`` and,
  in later V1 builds, ``engine``;
- SGLang: ``sglang:num_running_reqs``, ``sglang:num_queue_reqs``, ``sglang:token_usage``.

Usage values are fractions (1 = full). Several engines (``engine="0"``, ``engine="1"``: data
parallel ranks) are summed for requests; the KV usage reported is the fullest one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# (name, engine) in order of preference: the current name first.
RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs")
WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs")
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage")

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str) -> list[Sample]:
    """Every sample line of a Prometheus text exposition (comments and junk lines skipped)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        samples.append(Sample(match.group("name"), labels, value))
    return samples


def histogram_totals(samples: list[Sample], name: str) -> tuple[float, float]:
    """A histogram family's observation count and sum, added over its label sets (models,
    engines); (0, 0) when the family is absent. Two scrapes' difference is one window's."""
    count = sum(s.value for s in samples if s.name == f"{name}_count")
    total = sum(s.value for s in samples if s.name == f"{name}_sum")
    return count, total


@dataclass(frozen=True)
class EngineMetrics:
    running: float | None
    waiting: float | None
    kv_usage: float | None  # fraction, 0..1
    kv_metric: str | None  # the name it was read from
    models: tuple[str, ...]  # model_name labels seen

    @property
    def complete(self) -> bool:
        return None not in (self.running, self.waiting, self.kv_usage)


def _first(samples: list[Sample], names: tuple[str, ...], combine: str) -> tuple[float, str] | None:
    for name in names:
        values = [s.value for s in samples if s.name == name and not math.isnan(s.value)]
        if values:
            return (sum(values) if combine == "sum" else max(values)), name
    return None


def engine_metrics(text: str) -> EngineMetrics:
    samples = parse_prometheus(text)
    running = _first(samples, RUNNING, "sum")
    waiting = _first(samples, WAITING, "sum")
    kv = _first(samples, KV_USAGE, "max")
    models = sorted(
        {
            s.labels["model_name"]
            for s in samples
            if "model_name" in s.labels and s.name.startswith(("vllm:", "sglang:"))
        }
    )
    return EngineMetrics(
        running=running[0] if running else None,
        waiting=waiting[0] if waiting else None,
        kv_usage=kv[0] if kv else None,
        kv_metric=kv[1] if kv else None,
        models=tuple(models),
    )
