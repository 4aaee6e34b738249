"""NVIDIA node-tier verdicts beyond count/Xid/ECC (those are in node_checks.py): driver and CUDA
versions vs what provisioning installs, persistence mode, fabric manager on NVSwitch boards,
PCIe link width and throttling. Pure functions from parsed facts (facts/nvidia.py) to results.

``None`` for a fact means the tool was missing or timed out: the check is UNKNOWN, never OK.
"""

from __future__ import annotations

from ironserve.facts.nvidia import NvidiaDriverInfo, NvidiaGpu
from ironserve.health.model import CheckResult, Status
from ironserve.operations.apt_versions import upstream_version

TIER = "node"
DRIVER_RUNBOOK = "gpu-driver"
FABRIC_RUNBOOK = "fabric-manager"

# clocks_event_reasons bits that mean the hardware slows the GPU down (nvml.h
# nvmlClocksEventReason*): HW slowdown 0x8, SW thermal 0x20, HW thermal 0x40, HW power brake
# 0x80. Idle (0x1), application clocks (0x2), SW power cap (0x4) and sync boost (0x10) are normal.
THROTTLE_BITS = {0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal", 0x80: "power_brake"}


def _unknown(check: str, node: str, what: str, expected: str, runbook: str) -> CheckResult:
    return CheckResult(
        check, TIER, node, Status.UNKNOWN, what, expected, "check nvidia-smi answers", runbook
    )


def _version(text: str | None) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in (text or "").split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def driver(
    node: str,
    info: NvidiaDriverInfo | None,
    gpus: list[NvidiaGpu] | None,
    branch: str | None,
    min_cuda: str | None,
    pin: str | None = None,
) -> CheckResult:
    """``nvidia.driver``: the driver is the branch provisioning installs (``nvidia_driver_branch``)
    at the pinned version (``nvidia_driver_version``, an apt version: its upstream part is what
    nvidia-smi reports) on every GPU, and the CUDA version it supports is at least the toolkit's.
    ``branch`` None: no expectation, any loaded driver is OK (expected "any")."""
    check = "nvidia.driver"
    wanted = upstream_version(pin) if pin else None
    expected = (
        (f"branch {branch}" if branch else "any")
        + (f", version {wanted}" if wanted else "")
        + (f", CUDA >= {min_cuda}" if min_cuda else "")
    )
    if info is None:
        return _unknown(check, node, "nvidia-smi missing or timed out", expected, DRIVER_RUNBOOK)
    version = info.get("driver_version")
    if not version:
        return CheckResult(
            check,
            TIER,
            node,
            Status.FAIL,
            f"no driver: {info.get('error') or 'nvidia-smi printed no version'}",
            expected,
            "reload the driver (modprobe nvidia) or reboot; reinstall with deploys/provision.py",
            DRIVER_RUNBOOK,
        )
    cuda = info.get("cuda_version")
    observed = f"{version}, CUDA {cuda or '?'}"
    per_gpu = sorted({v for v in (g.get("driver_version") for g in gpus or []) if v})
    problems = []
    if branch and version.split(".")[0] != str(branch):
        problems.append(f"driver {version} is not branch {branch}")
    elif wanted and version != wanted:
        problems.append(f"driver {version} is not the pinned {wanted} (nvidia_driver_version)")
    if len(per_gpu) > 1:
        problems.append(f"GPUs report different drivers {per_gpu}")
    if min_cuda and cuda and _version(cuda) < _version(min_cuda):
        problems.append(f"CUDA {cuda} < {min_cuda}")
    if not problems:
        return CheckResult(check, TIER, node, Status.OK, observed, expected)
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL,
        f"{observed}: {'; '.join(problems)}",
        expected,
        "install the planned driver: pyinfra -y --limit NODE INVENTORY deploys/provision.py",
        "upgrade-driver",
    )


def persistence(node: str, gpus: list[NvidiaGpu] | None, wanted: bool = True) -> CheckResult:
    """``nvidia.persistence``: persistence mode as provisioning sets it (nvidia_persistence_mode);
    off means every CUDA start re-initialises the GPUs (slow first call, lost state)."""
    check = "nvidia.persistence"
    expected = "Enabled on every GPU" if wanted else "any"
    if gpus is None:
        return _unknown(check, node, "nvidia-smi missing or timed out", expected, DRIVER_RUNBOOK)
    off = [g["index"] for g in gpus if g.get("persistence_mode") is not True]
    if not wanted or not off:
        observed = "Enabled" if not off else f"Disabled on GPU {off}"
        return CheckResult(check, TIER, node, Status.OK, observed, expected)
    return CheckResult(
        check,
        TIER,
        node,
        Status.WARN,
        f"Disabled on GPU {off}",
        expected,
        "systemctl enable --now nvidia-persistenced (or nvidia-smi -pm 1)",
        DRIVER_RUNBOOK,
    )


def fabric_manager(
    node: str, nvswitch: bool | None, gpus: list[NvidiaGpu] | None
) -> CheckResult | None:
    """``nvidia.fabric_manager``: on a board with NVSwitches every GPU's fabric state is
    ``Completed`` (the fabric manager trained the fabric). None: no NVSwitch, no check."""
    check = "nvidia.fabric_manager"
    expected = "fabric state Completed on every GPU (nvidia-fabricmanager running)"
    if nvswitch is False:
        return None
    if nvswitch is None or gpus is None:
        what = "NVSwitch probe or nvidia-smi failed"
        return _unknown(check, node, what, expected, FABRIC_RUNBOOK)
    states = {g["index"]: g.get("fabric_state") for g in gpus}
    if states and all(s is None for s in states.values()):
        return _unknown(
            check, node, "the driver does not report fabric.state", expected, FABRIC_RUNBOOK
        )
    bad = {i: s for i, s in states.items() if s != "Completed"}
    if not bad:
        return CheckResult(check, TIER, node, Status.OK, "Completed", expected)
    shown = sorted({str(s) for s in bad.values()})
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL,
        f"fabric state {'/'.join(shown)} on GPU {sorted(bad)}",
        expected,
        "systemctl restart nvidia-fabricmanager (same version as the driver), then reboot",
        FABRIC_RUNBOOK,
    )


def pcie_width(node: str, gpus: list[NvidiaGpu] | None) -> CheckResult:
    """``nvidia.pcie``: every GPU's PCIe link runs at its full width (x8 on an x16 slot halves
    host<->GPU bandwidth: a reseat or riser problem). WARN, not FAIL: the GPU still works."""
    check = "nvidia.pcie"
    expected = "current width = max width"
    if gpus is None:
        return _unknown(check, node, "nvidia-smi missing or timed out", expected, DRIVER_RUNBOOK)
    narrow = [
        f"GPU {g['index']} x{g['pcie_link_width_current']}/x{g['pcie_link_width_max']}"
        for g in gpus
        if g.get("pcie_link_width_current") is not None
        and g.get("pcie_link_width_max") is not None
        and (g["pcie_link_width_current"] or 0) < (g["pcie_link_width_max"] or 0)
    ]
    if not narrow:
        widths = sorted({g.get("pcie_link_width_current") for g in gpus} - {None})  # type: ignore[type-var]
        return CheckResult(
            check, TIER, node, Status.OK, ", ".join(f"x{w}" for w in widths) or "n/a", expected
        )
    return CheckResult(
        check,
        TIER,
        node,
        Status.WARN,
        "; ".join(narrow),
        expected,
        "drain, reseat the GPU / riser, check the slot; then hardware",
        DRIVER_RUNBOOK,
    )


def throttle(node: str, gpus: list[NvidiaGpu] | None) -> CheckResult:
    """``nvidia.throttle``: no hardware or thermal slowdown active (cooling, power brake)."""
    check = "nvidia.throttle"
    expected = "no HW/thermal slowdown"
    if gpus is None:
        return _unknown(check, node, "nvidia-smi missing or timed out", expected, DRIVER_RUNBOOK)
    slowed = []
    for g in gpus:
        mask = g.get("clocks_event_reasons_active") or 0
        reasons = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
        if reasons:
            slowed.append(f"GPU {g['index']} {'+'.join(reasons)}")
    if not slowed:
        return CheckResult(check, TIER, node, Status.OK, "none", expected)
    return CheckResult(
        check,
        TIER,
        node,
        Status.WARN,
        "; ".join(slowed),
        expected,
        "check cooling, fans, inlet temperature and PSUs (nvidia-smi -q -d PERFORMANCE)",
        DRIVER_RUNBOOK,
    )
