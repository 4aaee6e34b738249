"""Host, fabric, container-runtime and Vastai node-tier verdicts: pure functions from parsed facts
(facts/host.py, facts/rdma.py, facts/docker.py) and the Plan's expectations to results.

``None`` for a fact means the tool was missing or timed out: the check is UNKNOWN, never OK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.facts.docker import DockerRuntimeInfo
from ironserve.facts.host import DfEntry, IommuState, Memlock, TimeSyncState
from ironserve.facts.rdma import IbPort
from ironserve.health.model import CheckResult, Status
from ironserve.rules import fabric
from ironserve.rules.disk import size_text
from ironserve.rules.limits import (
    memlock_enough,
    memlock_expected_text,
    memlock_text,
    shm_enough,
)

if TYPE_CHECKING:
    from ironserve.plan.derived import NodeDisk

TIER = "node"
LIMITS_RUNBOOK = "host-limits"


def disk(
    node: str, path: str, free: int | None, present: int, planned: NodeDisk | None
) -> CheckResult:
    """``host.disk``: the filesystem of the weights folder has room for the weights: the Plan's
    disk need of the node (ironserve.rules.disk, as preflight and roles/weights judge it:
    weights x margin), less the ``present`` bytes already in the folder, never below the floor.
    ``planned`` None: the inventory does not plan, the free space is reported (OK, "any")."""
    check = "host.disk"
    if free is None:
        return CheckResult(
            check, TIER, node, Status.UNKNOWN, f"df failed for {path}", "df answers", "", ""
        )
    observed = f"{size_text(free)} free for {path}"
    if planned is None:
        return CheckResult(check, TIER, node, Status.OK, observed, "any (no Plan)")
    need = planned.need(present)
    expected = need.explain()
    if need.enough(free):
        return CheckResult(check, TIER, node, Status.OK, observed, expected)
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL,
        observed,
        expected,
        f"free space on the filesystem of {path} (old models, logs, images)",
        "disk-full",
    )


def shm(node: str, entry: DfEntry | None, minimum: int) -> CheckResult:
    """``host.shm``: /dev/shm at least ``minimum`` bytes (NCCL and processes outside containers)."""
    check = "host.shm"
    expected = f">= {size_text(minimum)}"
    if entry is None:
        return CheckResult(
            check, TIER, node, Status.UNKNOWN, "df /dev/shm failed", expected, "", LIMITS_RUNBOOK
        )
    size = entry["size_bytes"]
    ok = shm_enough(size, minimum)
    return CheckResult(
        check,
        TIER,
        node,
        Status.OK if ok else Status.WARN,
        size_text(size),
        expected,
        "" if ok else "enlarge /dev/shm (tmpfs size=) for processes outside containers",
        "" if ok else LIMITS_RUNBOOK,
    )


def memlock(node: str, limit: Memlock | None, expected_bytes: int | None) -> CheckResult:
    """``host.memlock``: the shell's locked-memory limit is enough by ironserve.rules.limits
    (unlimited, or at least the finite limit the site gives its engine containers;
    ``expected_bytes`` from ``rules.limits.memlock_expected``, None: no expectation)."""
    check = "host.memlock"
    expected = memlock_expected_text(expected_bytes)
    if limit is None:
        return CheckResult(
            check, TIER, node, Status.UNKNOWN, "ulimit -l failed", expected, "", LIMITS_RUNBOOK
        )
    ok = memlock_enough(limit, expected_bytes)
    return CheckResult(
        check,
        TIER,
        node,
        Status.OK if ok else Status.WARN,
        memlock_text(limit),
        expected,
        "" if ok else "deploys/provision.py (roles/base: limits.d and LimitMEMLOCK), re-login",
        "" if ok else LIMITS_RUNBOOK,
    )


def time_sync(node: str, state: TimeSyncState | None, managed: str | None) -> CheckResult:
    """``host.time_sync``: the clock is NTP-synchronised where ironserve manages time sync
    (``base_time_sync``); where it does not (None: containers use the host's clock) the state is
    reported and not judged. No timedatectl/chronyc answer: UNKNOWN."""
    check = "host.time_sync"
    if state is None or state["synchronized"] is None:
        return CheckResult(
            check,
            TIER,
            node,
            Status.UNKNOWN,
            "neither timedatectl nor chronyc answers",
            "synchronised" if managed else "any",
            "install chrony or systemd-timesyncd",
            LIMITS_RUNBOOK,
        )
    word = "synchronised" if state["synchronized"] else "not synchronised"
    observed = f"{word} ({state['source']})"
    if managed is None:
        return CheckResult(check, TIER, node, Status.OK, observed, "any (base_time_sync: None)")
    ok = bool(state["synchronized"])
    return CheckResult(
        check,
        TIER,
        node,
        Status.OK if ok else Status.WARN,
        observed,
        f"synchronised ({managed})",
        "" if ok else f"systemctl restart {managed}; check the NTP servers are reachable",
        "" if ok else LIMITS_RUNBOOK,
    )


def container_runtime(
    node: str, info: DockerRuntimeInfo | None, docker_present: bool, nvidia: bool
) -> CheckResult:
    """``host.container_runtime``: dockerd answers, and on NVIDIA nodes has the ``nvidia`` runtime
    registered (what engine containers run with)."""
    check = "host.container_runtime"
    expected = "dockerd answers" + (", nvidia runtime registered" if nvidia else "")
    action = "pyinfra -y --limit NODE INVENTORY deploys/provision.py"
    if not docker_present:
        return CheckResult(
            check,
            TIER,
            node,
            Status.FAIL,
            "docker is not installed",
            expected,
            action,
            "container-runtime",
        )
    if info is None:
        return CheckResult(
            check,
            TIER,
            node,
            Status.UNKNOWN,
            "docker info timed out",
            expected,
            "",
            "container-runtime",
        )
    if info["error"]:
        return CheckResult(
            check,
            TIER,
            node,
            Status.FAIL,
            f"dockerd does not answer: {info['error']}",
            expected,
            "systemctl restart docker; journalctl -u docker",
            "container-runtime",
        )
    names = sorted(info["runtimes"])
    observed = f"runtimes {', '.join(names)} (default {info['default_runtime']})"
    if nvidia and "nvidia" not in info["runtimes"]:
        return CheckResult(
            check,
            TIER,
            node,
            Status.FAIL,
            observed,
            expected,
            f"{action} (nvidia-ctk runtime configure, restart docker)",
            "container-runtime",
        )
    return CheckResult(check, TIER, node, Status.OK, observed, expected)


def ib_ports(
    node: str, ports: list[IbPort] | None, hcas: list[str], min_rate_gbps: float | None = None
) -> CheckResult:
    """``fabric.ib_port``: every port of the node's HCAs (those the inventory names in ib_hcas,
    else all) is ACTIVE / LinkUp (ironserve.rules.fabric, the rule roles/fabric applies), at
    full rate: ``min_rate_gbps``, else the fastest port of the same HCA type and link layer.
    ``ports`` None: ibstat missing or timed out."""
    check = "fabric.ib_port"
    mine = fabric.node_ports(ports, hcas) if ports is not None else None
    if mine is None or not mine:
        what = "ibstat missing or timed out" if mine is None else "ibstat lists no port"
        return CheckResult(
            check,
            TIER,
            node,
            Status.UNKNOWN if mine is None else Status.FAIL,
            what,
            f"{len(hcas) or 'every'} HCA port(s) {fabric.PORT_STATE}",
            "install infiniband-diags (deploys/provision.py); check the HCA driver",
            "ib-port",
        )
    rates = sorted({r for r in fabric.fastest_rates(mine).values() if r}, reverse=True)
    shown = f"{min_rate_gbps:g}" if min_rate_gbps else "/".join(f"{r:g}" for r in rates)
    expected = f"{fabric.PORT_STATE}, {fabric.PHYSICAL_STATE}" + (
        f", {shown} Gb/s" if shown else ""
    )
    problems = fabric.port_problems(mine, hcas)
    slow = fabric.slow_ports(mine, min_rate_gbps)
    if not problems and not slow:
        return CheckResult(check, TIER, node, Status.OK, f"{len(mine)} port(s) ACTIVE", expected)
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL if problems else Status.WARN,
        "; ".join(problems + slow),
        expected,
        "check cable, transceiver and switch port; a subnet manager on the fabric (IB)",
        "ib-port",
    )


def vastai_devices(
    node: str, pci: Sequence[Mapping[str, Any]] | None, expected: int
) -> CheckResult:
    """``vastai.devices``: the PCI bus shows the planned number of Vastai dies (or cards)."""
    check = "vastai.devices"
    if pci is None:
        return CheckResult(
            check,
            TIER,
            node,
            Status.UNKNOWN,
            "lspci missing or timed out",
            str(expected),
            "",
            "vastai-devices",
        )
    vendors = {a.pci_vendor_id for a in ACCELERATORS.values() if a.vendor == "vastai"}
    found = [d for d in pci if d.get("vendor_id") in vendors]
    ok = len(found) >= expected
    return CheckResult(
        check,
        TIER,
        node,
        Status.OK if ok else Status.FAIL,
        f"{len(found)} PCI function(s)",
        f">= {expected}",
        "" if ok else "reload the vastai driver, reseat the card, then hardware",
        "" if ok else "vastai-devices",
    )


def vastai_iommu(node: str, state: IommuState | None) -> CheckResult:
    """``vastai.iommu``: the IOMMU is off (VA16 cards refuse to run with it on) or passthrough."""
    check = "vastai.iommu"
    if state is None:
        return CheckResult(
            check, TIER, node, Status.UNKNOWN, "IOMMU probe failed", "off", "", "vastai-devices"
        )
    on = (state["enabled"] and not state["passthrough"]) or state["vastai_warning"]
    observed = "on" if state["enabled"] else "off"
    if state["passthrough"]:
        observed += " (passthrough)"
    if state["vastai_warning"]:
        observed += ", driver logged 'iommu is enable'"
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL if on else Status.OK,
        observed,
        "off (or iommu=pt)",
        "set intel_iommu=off / amd_iommu=off (or iommu=pt) on the kernel command line, reboot"
        if on
        else "",
        "vastai-devices" if on else "",
    )
