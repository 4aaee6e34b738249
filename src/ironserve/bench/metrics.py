"""Benchmark metrics from per-request timings: pure functions, no I/O.

Definitions follow `vllm bench serve`: TTFT is the time from sending the request to the first
streamed token; TPOT is (E2E latency - TTFT) / (output tokens - 1) per request; ITL is every gap
between consecutive streamed chunks; E2E latency is send to last byte. Throughputs divide by the
wall time of the whole level (first send to last completion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

PERCENTILES = (50.0, 90.0, 99.0)


@dataclass
class RequestResult:
    """What one streamed request did (times in seconds, relative to any common clock)."""

    sent: float
    ok: bool = False
    first_token: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # arrival of each content chunk
    done: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Distribution:
    """Mean, median, p90 and p99 of one metric, in milliseconds."""

    mean: float
    median: float
    p90: float
    p99: float

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Distribution:
        ms = [v * 1000.0 for v in values]
        mean = sum(ms) / len(ms) if ms else 0.0
        return cls(mean, percentile(ms, 50), percentile(ms, 90), percentile(ms, 99))


@dataclass(frozen=True)
class LevelSummary:
    """One level of the sweep (a concurrency limit and a request rate)."""

    concurrency: int
    request_rate: float  # requests per second; math.inf = all at once
    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft: Distribution
    tpot: Distribution
    itl: Distribution
    e2el: Distribution
    errors: list[str]

    def as_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "concurrency": self.concurrency,
            "request_rate": None if math.isinf(self.request_rate) else self.request_rate,
            "completed": self.completed,
            "failed": self.failed,
            "duration_s": self.duration_s,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
            "request_throughput": self.request_throughput,
            "output_throughput": self.output_throughput,
            "total_token_throughput": self.total_token_throughput,
            "errors": self.errors,
        }
        for name in ("ttft", "tpot", "itl", "e2el"):
            dist: Distribution = getattr(self, name)
            doc.update(
                {
                    f"mean_{name}_ms": dist.mean,
                    f"median_{name}_ms": dist.median,
                    f"p90_{name}_ms": dist.p90,
                    f"p99_{name}_ms": dist.p99,
                }
            )
        return doc


def summarize(
    results: Sequence[RequestResult], concurrency: int, request_rate: float, duration_s: float
) -> LevelSummary:
    good = [r for r in results if r.ok and r.first_token is not None and r.done is not None]
    ttfts = [r.first_token - r.sent for r in good if r.first_token is not None]
    e2els = [r.done - r.sent for r in good if r.done is not None]
    tpots: list[float] = []
    itls: list[float] = []
    for r in good:
        assert r.first_token is not None and r.done is not None
        if r.output_tokens > 1:
            tpots.append((r.done - r.first_token) / (r.output_tokens - 1))
        itls.extend(b - a for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False))
    n_in = sum(r.prompt_tokens for r in good)
    n_out = sum(r.output_tokens for r in good)
    wall = duration_s if duration_s > 0 else float("nan")
    errors = sorted({r.error for r in results if not r.ok and r.error})
    return LevelSummary(
        concurrency=concurrency,
        request_rate=request_rate,
        completed=len(good),
        failed=len(results) - len(good),
        duration_s=duration_s,
        total_input_tokens=n_in,
        total_output_tokens=n_out,
        request_throughput=len(good) / wall,
        output_throughput=n_out / wall,
        total_token_throughput=(n_in + n_out) / wall,
        ttft=Distribution.of_seconds(ttfts),
        tpot=Distribution.of_seconds(tpots),
        itl=Distribution.of_seconds(itls),
        e2el=Distribution.of_seconds(e2els),
        errors=errors[:5],
    )
