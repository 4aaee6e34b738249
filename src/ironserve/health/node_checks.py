"""Node-tier verdicts: pure functions from parsed facts (facts/nvidia.py) to results."""

from __future__ import annotations

from typing import Any

from ironserve.facts.nvidia import NvidiaGpu, XidEvent
from ironserve.health.model import CheckResult, Status

TIER = "node"
# Xids that mean the GPU is gone or corrupt: anything else in the window is a warning. Xid 63
# (a row remap recorded) is a warning: the GPU works, and what must be done (a reset to apply the
# remap) is nvidia.row_remap's FAIL, with its own runbook (GCM: WARN; reliability.md XID row).
FATAL_XIDS = {48, 64, 74, 79, 92, 94, 95, 119, 120}


def unreachable(node: str, error: str) -> CheckResult:
    return CheckResult(
        "host.reachable",
        TIER,
        node,
        Status.FAIL,
        f"unreachable: {error}",
        "SSH answers",
        "check power/network, then reboot",
        "node-down",
    )


def gpu_count(node: str, gpus: list[NvidiaGpu] | None, expected: int) -> CheckResult:
    if gpus is None:
        return CheckResult(
            "nvidia.gpu_count",
            TIER,
            node,
            Status.UNKNOWN,
            "nvidia-smi missing or timed out",
            str(expected),
            "reload driver / reboot",
            "gpu-driver",
        )
    ok = len(gpus) >= expected
    return CheckResult(
        "nvidia.gpu_count",
        TIER,
        node,
        Status.OK if ok else Status.FAIL,
        str(len(gpus)),
        str(expected),
        "" if ok else "reset device, then reboot, then hardware",
        "" if ok else "gpu-missing",
    )


def gpu_xid(node: str, events: list[XidEvent] | None) -> CheckResult:
    if events is None:
        return CheckResult(
            "nvidia.xid",
            TIER,
            node,
            Status.UNKNOWN,
            "kernel log unreadable",
            "no XID",
            "",
            "gpu-xid",
        )
    codes = sorted({e["xid"] for e in events if e.get("xid") is not None})
    if not codes:
        return CheckResult("nvidia.xid", TIER, node, Status.OK, "none", "no XID in the last hour")
    fatal = any(c in FATAL_XIDS for c in codes)
    return CheckResult(
        "nvidia.xid",
        TIER,
        node,
        Status.FAIL if fatal else Status.WARN,
        "xid " + ",".join(map(str, codes)),
        "no XID in the last hour",
        "reset GPU, then reboot, then hardware (79: GPU fell off the bus)",
        "gpu-xid",
    )


def gpu_ecc(node: str, gpus: list[NvidiaGpu] | None) -> list[CheckResult]:
    if gpus is None:  # nvidia-smi missing or timed out: both UNKNOWN, never OK
        return [
            CheckResult(
                check, TIER, node, Status.UNKNOWN, "nvidia-smi missing or timed out", want, "", book
            )
            for check, want, book in (
                ("nvidia.ecc", "0 uncorrectable", "gpu-ecc"),
                ("nvidia.row_remap", "none pending", "gpu-row-remap"),
            )
        ]
    bad_ecc = [g["index"] for g in gpus if (g.get("ecc_uncorrected_volatile") or 0) > 0]
    pending = [g["index"] for g in gpus if _get(g, "remapped_rows_pending")]
    return [
        CheckResult(
            "nvidia.ecc",
            TIER,
            node,
            Status.FAIL if bad_ecc else Status.OK,
            f"uncorrectable on GPU {bad_ecc}" if bad_ecc else "0",
            "0 uncorrectable",
            "drain, reset GPU, RMA if it persists" if bad_ecc else "",
            "gpu-ecc" if bad_ecc else "",
        ),
        CheckResult(
            "nvidia.row_remap",
            TIER,
            node,
            Status.FAIL if pending else Status.OK,
            f"pending on GPU {pending}" if pending else "none",
            "none pending",
            "reset GPU to apply the remap" if pending else "",
            "gpu-row-remap" if pending else "",
        ),
    ]


def _get(gpu: NvidiaGpu, key: str) -> Any:
    return dict(gpu).get(key)
