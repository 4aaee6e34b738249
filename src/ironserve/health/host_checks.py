"""Host, fabric, container-runtime and Vastai node-tier verdicts: pure functions from parsed facts
(facts/host.py, facts/rdma.py, facts/docker.py) and the Plan's expectations to results.

``None`` for a fact means the tool was missing or timed out: the check is UNKNOWN, never OK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.facts.docker import DockerRuntimeInfo
from ironserve.facts.host import DfEntry, IommuState, Memlock, TimeSyncState
from ironserve.facts.rdma import IbPort
from ironserve.health.model import CheckResult, Status

TIER = "node"
GIB = 1024**3
MIB = 1024**2
LIMITS_RUNBOOK = "host-limits"


def _gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


def _size(value: int) -> str:
    return _gib(value) if value >= GIB else f"{value // MIB} MiB"


def disk(
    node: str,
    path: str,
    free: int | None,
    present: int,
    weights_bytes: int | None,
    margin: float = 1.1,
) -> CheckResult:
    """``host.disk``: the filesystem of the weights folder has room for what is still to come:
    the Plan's weights x margin, less what is already in the folder (``present`` bytes).
    ``weights_bytes`` None: the inventory does not plan, the free space is reported (OK, "any")."""
    check = "host.disk"
    if free is None:
        return CheckResult(
            check, TIER, node, Status.UNKNOWN, f"df failed for {path}", "df answers", "", ""
        )
    observed = f"{_gib(free)} free for {path}"
    if weights_bytes is None:
        return CheckResult(check, TIER, node, Status.OK, observed, "any (no Plan)")
    need = max(int(weights_bytes * margin) - present, 0)
    # A full filesystem is a failure even when the weights are all there: the engine and the
    # verification markers write next to them.
    need = max(need, 64 * MIB)
    expected = (
        f">= {_size(need)} free (weights {_gib(weights_bytes)} x {margin},"
        f" {_size(present)} present)"
    )
    if free >= need:
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
    expected = f">= {_size(minimum)}"
    if entry is None:
        return CheckResult(
            check, TIER, node, Status.UNKNOWN, "df /dev/shm failed", expected, "", LIMITS_RUNBOOK
        )
    size = entry["size_bytes"]
    ok = size >= minimum
    return CheckResult(
        check,
        TIER,
        node,
        Status.OK if ok else Status.WARN,
        _size(size),
        expected,
        "" if ok else "enlarge /dev/shm (tmpfs size=) for processes outside containers",
        "" if ok else LIMITS_RUNBOOK,
    )


def memlock(node: str, limit: Memlock | None, expected_bytes: int | None) -> CheckResult:
    """``host.memlock``: the shell's locked-memory limit is at least what the site gives its
    engine containers: unlimited (``expected_bytes`` -1, roles/base's default), a size (the
    inventory's daemon default-ulimits), or None: no expectation."""
    check = "host.memlock"
    if expected_bytes is None:
        expected = "any"
    else:
        expected = "unlimited" if expected_bytes < 0 else f">= {_size(expected_bytes)}"
    if limit is None:
        return CheckResult(
            check, TIER, node, Status.UNKNOWN, "ulimit -l failed", expected, "", LIMITS_RUNBOOK
        )
    observed = "unlimited" if limit["unlimited"] else _size(limit["bytes"] or 0)
    ok = (
        expected_bytes is None
        or limit["unlimited"]
        or (expected_bytes >= 0 and (limit["bytes"] or 0) >= expected_bytes)
    )
    return CheckResult(
        check,
        TIER,
        node,
        Status.OK if ok else Status.WARN,
        observed,
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
    else all) is ACTIVE / LinkUp at full rate: ``min_rate_gbps``, else the fastest port of the
    same HCA type and link layer (a frontend 100G RoCE NIC is not a slow 400G IB port).
    ``ports`` None: ibstat missing or timed out."""
    check = "fabric.ib_port"
    named = [ca for ca in hcas if ":" not in ca]  # names (mlx5_0), not PCI slots
    if ports is not None and named:
        ports = [p for p in ports if p["ca"] in named]
    if ports is None or not ports:
        what = "ibstat missing or timed out" if ports is None else "ibstat lists no port"
        return CheckResult(
            check,
            TIER,
            node,
            Status.UNKNOWN if ports is None else Status.FAIL,
            what,
            f"{len(hcas) or 'every'} HCA port(s) ACTIVE",
            "install infiniband-diags (deploys/provision.py); check the HCA driver",
            "ib-port",
        )
    fastest: dict[tuple[str | None, str | None], float] = {}
    for p in ports:
        kind = (p.get("ca_type"), p.get("link_layer"))
        fastest[kind] = max(fastest.get(kind, 0.0), p.get("rate_gbps") or 0.0)
    rates = sorted({r for r in fastest.values() if r}, reverse=True)
    shown = f"{min_rate_gbps:g}" if min_rate_gbps else "/".join(f"{r:g}" for r in rates)
    expected = "ACTIVE, LinkUp" + (f", {shown} Gb/s" if shown else "")
    present = {p["ca"] for p in ports}
    problems = [f"HCA {ca} missing" for ca in named if ca not in present]
    down = [p for p in ports if p.get("state") != "ACTIVE" or p.get("physical_state") != "LinkUp"]
    problems += [f"{p['ca']}/{p['port']} {p['state']} ({p['physical_state']})" for p in down]
    slow = [
        f"{p['ca']}/{p['port']} {p.get('rate_gbps') or 0:g} Gb/s"
        for p in ports
        if p not in down
        and (p.get("rate_gbps") or 0)
        < (min_rate_gbps or fastest[(p.get("ca_type"), p.get("link_layer"))])
    ]
    if not problems and not slow:
        return CheckResult(check, TIER, node, Status.OK, f"{len(ports)} port(s) ACTIVE", expected)
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
