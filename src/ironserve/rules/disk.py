"""Disk for the weights: the free space a node needs for the Plan's weights, given what the
weights folder already holds. The Plan states each node's need (plan/derived.py ``NodeDisk``:
:func:`node_disk_need_bytes` with the node's own margin); preflight (roles/preflight),
``ironserve health`` (host.disk) and the weights role's guard (roles/weights) read it there and
take off what is present (``NodeDisk.need``, :func:`disk_need`), so the same node gets the same
verdict from each.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024**2
GIB = 1024**3

# The filesystem must hold the weights times this (the engine's caches, logs and the
# verification markers live beside them). The site may change it: ``preflight_disk_margin``.
DISK_MARGIN = 1.1
# Never less than this free, even with every weight in place: a full filesystem breaks the
# engine and the markers written next to the weights.
DISK_FLOOR_BYTES = 64 * MIB


@dataclass(frozen=True)
class DiskNeed:
    """What a node needs free, and from what."""

    weights_bytes: int
    present_bytes: int
    margin: float
    need_bytes: int

    def enough(self, free_bytes: int) -> bool:
        return free_bytes >= self.need_bytes

    def explain(self) -> str:
        """``>= 1.2 GiB free (weights 16.0 GiB x 1.1, 16.4 GiB present)``"""
        return (
            f">= {size_text(self.need_bytes)} free (weights {size_text(self.weights_bytes)}"
            f" x {self.margin:g}, {size_text(self.present_bytes)} present)"
        )


def disk_need(weights_bytes: int, present_bytes: int = 0, margin: float = DISK_MARGIN) -> DiskNeed:
    """The weights x ``margin``, less what is already present, and never below the floor."""
    present = max(present_bytes, 0)
    need = max(int(weights_bytes * margin) - present, DISK_FLOOR_BYTES)
    return DiskNeed(weights_bytes, present, margin, need)


def node_disk_need_bytes(weights_bytes: int, margin: float = DISK_MARGIN) -> int:
    """Free bytes a node without any weights needs: what the Plan states per node."""
    return disk_need(weights_bytes, 0, margin).need_bytes


def size_text(value: int) -> str:
    """GiB from 1 GiB up, MiB below."""
    return f"{value / GIB:.1f} GiB" if value >= GIB else f"{value // MIB} MiB"
