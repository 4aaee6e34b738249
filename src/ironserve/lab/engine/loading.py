"""The "load": the time a real engine spends reading shards into device memory, with vLLM's
progress lines (a readiness wait can tell a slow load from a stalled one by them)."""

from __future__ import annotations

import os
import sys
import time

from .weights import Weights

LOAD_ENV = "IRONSERVE_LAB_LOAD_SECONDS"  # how long the whole load takes (default 3)


def load_seconds() -> float:
    return max(0.0, float(os.environ.get(LOAD_ENV, "3")))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def progress_line(done: int, total: int, elapsed: float, per_shard: float) -> str:
    """``Loading safetensors checkpoint shards:  50% Completed | 2/4 [00:01<00:01,  1.50it/s]``"""
    percent = int(100 * done / total) if total else 100
    remaining = per_shard * (total - done)
    rate = done / elapsed if elapsed > 0 else 0.0
    return (
        f"Loading safetensors checkpoint shards: {percent:3d}% Completed | {done}/{total} "
        f"[{_clock(elapsed)}<{_clock(remaining)}, {rate:5.2f}it/s]"
    )


def load(weights: Weights, seconds: float | None = None) -> float:
    """Print the progress over ``seconds`` (split evenly across shards); the time taken."""
    seconds = load_seconds() if seconds is None else seconds
    total = len(weights.shards)
    per_shard = seconds / total if total else 0.0
    started = time.monotonic()
    print(progress_line(0, total, 0.0, per_shard), file=sys.stderr, flush=True)
    for done in range(1, total + 1):
        time.sleep(per_shard)
        elapsed = time.monotonic() - started
        print(progress_line(done, total, elapsed, per_shard), file=sys.stderr, flush=True)
    took = time.monotonic() - started
    gib = weights.total_bytes / 2**30
    print(
        f"INFO {time.strftime('%m-%d %H:%M:%S')} [default_loader.py] Loading weights took "
        f"{took:.2f} seconds",
        file=sys.stderr,
        flush=True,
    )
    print(
        f"INFO {time.strftime('%m-%d %H:%M:%S')} [gpu_model_runner.py] Model loading took "
        f"{gib:.4f} GiB and {took:.6f} seconds",
        file=sys.stderr,
        flush=True,
    )
    return took
