"""Waiting for an engine that may take most of an hour to load, without waiting forever.

A 671B checkpoint takes 40-50 minutes to load, so a fixed short timeout is wrong; but a hung
load must not hold the operator for the whole hour either. The rule: the wait fails when the
engine's log has not moved for ``stall_s`` (a stalled load), when the engine process is gone,
or after ``total_s`` in all; a slow load that keeps printing progress goes on. The log is what
vLLM prints while loading (``Loading safetensors checkpoint shards:  40% Completed | 2/5 ...``),
so progress is reported from it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Lines worth showing the operator while waiting (vLLM, SGLang and the lab engine print them).
_PROGRESS = re.compile(
    r"(Loading safetensors checkpoint shards:.*?\d+/\d+|Loading weights took [\d.]+ seconds"
    r"|Model loading took .*|Waiting for creating a placement group.*|Placement group ready.*"
    r"|Capturing CUDA graph.*|Starting vLLM API server.*|Uvicorn running on .*"
    r"|The server is fired up and ready to roll!)"
)


class NotReady(RuntimeError):
    """The engine did not become ready: stalled, died or timed out (the message says which)."""


def progress_of(log: str) -> str | None:
    """The last progress line of ``log`` (the part that matters), or None."""
    found = None
    for line in log.splitlines():
        match = _PROGRESS.search(line)
        if match:
            found = match.group(1).strip()
    return found


def last_line(log: str) -> str:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(empty log)"


@dataclass
class LoadWatch:
    """Tracks one readiness wait: when it started, when the log last moved."""

    started: float
    stall_s: float
    total_s: float
    last_change: float = field(init=False)
    last_log: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.last_change = self.started

    def observe(self, now: float, log: str) -> bool:
        """Record the log's tail at ``now``; True when it moved since the last look."""
        moved = log != self.last_log
        if moved:
            self.last_log = log
            self.last_change = now
        return moved

    def verdict(self, now: float, what: str) -> None:
        """Raise NotReady when the load stalled or the wait ran out of time."""
        log = self.last_log or ""
        if now - self.last_change >= self.stall_s:
            raise NotReady(
                f"{what}: the engine log has not moved for {now - self.last_change:.0f} s "
                f"(stall limit {self.stall_s:g} s; a slow load that prints progress is waited "
                f"for, a silent one is not). Last line: {last_line(log)}"
            )
        if now - self.started >= self.total_s:
            raise NotReady(
                f"{what}: not ready after {now - self.started:.0f} s (limit {self.total_s:g} s). "
                f"Last progress: {progress_of(log) or last_line(log)}"
            )
