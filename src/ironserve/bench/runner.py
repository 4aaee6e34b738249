"""The sweep: for each concurrency level, send the dataset with Poisson arrivals at the request
rate (all at once for an infinite rate), at most ``concurrency`` requests in flight."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from ironserve.bench.client import stream_completion
from ironserve.bench.dataset import BenchRequest
from ironserve.bench.metrics import LevelSummary, RequestResult, summarize


@dataclass(frozen=True)
class Target:
    """Where the load goes: the OpenAI base URL (ending in /v1), the served model name, the key."""

    base_url: str
    model: str
    api_key: str | None = None


def arrival_gaps(count: int, request_rate: float, seed: int) -> list[float]:
    """Seconds to wait before each request: exponential gaps (a Poisson process) at
    ``request_rate`` per second, or none at all for an infinite rate."""
    if math.isinf(request_rate):
        return [0.0] * count
    rng = random.Random(seed)
    return [rng.expovariate(request_rate) for _ in range(count)]


async def run_level(
    target: Target,
    requests: Sequence[BenchRequest],
    concurrency: int,
    request_rate: float = math.inf,
    seed: int = 0,
    timeout_s: float = 600.0,
) -> LevelSummary:
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        headers=headers, timeout=httpx.Timeout(timeout_s), limits=limits
    ) as client:

        async def one(request: BenchRequest) -> RequestResult:
            async with gate:
                return await stream_completion(client, target.base_url, target.model, request)

        started = time.perf_counter()
        tasks = []
        for gap, request in zip(
            arrival_gaps(len(requests), request_rate, seed), requests, strict=True
        ):
            if gap:
                await asyncio.sleep(gap)
            tasks.append(asyncio.create_task(one(request)))
        results = await asyncio.gather(*tasks)
        duration = time.perf_counter() - started
    return summarize(results, concurrency, request_rate, duration)


def run_sweep(
    target: Target,
    requests: Sequence[BenchRequest],
    concurrencies: Sequence[int],
    request_rate: float = math.inf,
    seed: int = 0,
    timeout_s: float = 600.0,
) -> list[LevelSummary]:
    """Each level in turn (never overlapping: one level's load must not skew the next)."""
    return [
        asyncio.run(run_level(target, requests, c, request_rate, seed, timeout_s))
        for c in concurrencies
    ]
