"""Preflight checks as pure functions: facts of one node + its plan -> findings.

A finding with ``fatal=True`` stops the run before any change on any node; the others are
printed (they are things the roles fix, such as memlock, or that only matter later).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ironserve.catalog.accelerators import Accelerator
from ironserve.facts.host import DfEntry, Memlock
from ironserve.rules.disk import size_text
from ironserve.rules.limits import (
    memlock_enough,
    memlock_expected_text,
    memlock_text,
    shm_enough,
)

if TYPE_CHECKING:
    from ironserve.plan.derived import NodeDisk

# PCI classes that are accelerators: VGA, 3D controller, processing accelerator. NVSwitches are
# NVIDIA functions of class 0680 (bridge) and are never counted.
ACCELERATOR_CLASSES = frozenset({"0300", "0302", "1200"})


@dataclass(frozen=True)
class Finding:
    host: str
    check: str
    message: str
    remedy: str
    fatal: bool = True

    def line(self) -> str:
        return f"{self.host}: {self.check}: {self.message}. Remedy: {self.remedy}"


def accelerator_functions(pci: list[dict[str, Any]], vendor_id: str) -> list[dict[str, Any]]:
    return [
        d
        for d in pci
        if d.get("vendor_id") == vendor_id and d.get("class_id") in ACCELERATOR_CLASSES
    ]


def check_accelerators(
    host: str, pci: list[dict[str, Any]], accel: Accelerator, count: int
) -> list[Finding]:
    found = accelerator_functions(pci, accel.pci_vendor_id)
    expected = {count, count * accel.units_per_device}
    if len(found) in expected:
        return []
    other = sorted({d["vendor_id"] for d in pci if d.get("class_id") in ACCELERATOR_CLASSES} - {""})
    seen = f"; accelerators of vendor {', '.join(other)} are present" if other else ""
    return [
        Finding(
            host,
            "accelerators",
            f"the PCI bus shows {len(found)} {accel.vendor} accelerator(s) (vendor "
            f"{accel.pci_vendor_id}), the inventory says {count} x {accel.id}{seen}",
            "check `lspci -d " + accel.pci_vendor_id + ":` on the node: reseat or replace the "
            "missing device (or power-cycle the node), or correct accelerator_count/"
            "accelerator_kind in the inventory",
        )
    ]


def check_network(
    host: str, interfaces: dict[str, list[str]], ifname: str | None, node_ip: str
) -> list[Finding]:
    if not interfaces:
        return [
            Finding(
                host,
                "network",
                "`ip -j addr` gave no interfaces",
                "install iproute2 on the node",
            )
        ]
    names = ", ".join(sorted(interfaces))
    if ifname is not None and ifname not in interfaces:
        return [
            Finding(
                host,
                "network",
                f"network_socket_ifname {ifname!r} does not exist (interfaces: {names})",
                "set network_socket_ifname to the NIC that carries node_ip",
            )
        ]
    if ifname is not None and node_ip not in interfaces[ifname]:
        carriers = [n for n, addrs in interfaces.items() if node_ip in addrs]
        where = f"it is on {carriers[0]}" if carriers else "no interface carries it"
        return [
            Finding(
                host,
                "network",
                f"{ifname} does not carry node_ip {node_ip} ({where})",
                "set network_socket_ifname to the interface holding node_ip, or fix node_ip",
            )
        ]
    if ifname is None and not any(node_ip in addrs for addrs in interfaces.values()):
        return [
            Finding(
                host,
                "network",
                f"no interface carries node_ip {node_ip} (interfaces: {names})",
                "set node_ip to the node's address on the cluster network",
            )
        ]
    return []


def check_disk(
    host: str, path: str, free: int | None, planned: NodeDisk, present: int = 0
) -> list[Finding]:
    """Room for the weights on the filesystem of ``path``: the Plan's disk need of the node
    (ironserve.rules.disk: weights x margin), less the ``present`` bytes already in place."""
    if free is None:
        return [
            Finding(host, "disk", f"cannot measure free space for {path}", "check that df works")
        ]
    need = planned.need(present)
    if need.enough(free):
        return []
    return [
        Finding(
            host,
            "disk",
            f"{size_text(free)} free for {path}, the weights need {need.explain()}",
            f"free space on the filesystem of {path}, or set model_weights_dir to a larger one",
        )
    ]


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.replace("-", ".").split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def distro_version(distro: dict[str, Any]) -> tuple[str, str]:
    meta = distro.get("release_meta") or {}
    ident = str(meta.get("ID") or distro.get("name") or "").lower()
    version = str(meta.get("VERSION_ID") or distro.get("major") or "")
    return ident, version


def check_os(
    host: str,
    distro: dict[str, Any] | None,
    kernel: str | None,
    supported: dict[str, list[str]],
    min_kernel: str,
) -> list[Finding]:
    findings = []
    ident, version = distro_version(distro or {})
    if ident not in supported or version not in supported[ident]:
        wanted = "; ".join(f"{d} {', '.join(v)}" for d, v in sorted(supported.items()))
        findings.append(
            Finding(
                host,
                "os",
                f"{ident or 'unknown'} {version or '?'} is not supported (supported: {wanted})",
                "install a supported distribution, or extend preflight_distributions if you "
                "have checked the vendor packages exist for it",
            )
        )
    if not kernel or _version_tuple(kernel) < _version_tuple(min_kernel):
        findings.append(
            Finding(
                host,
                "kernel",
                f"kernel {kernel or 'unknown'} is older than {min_kernel}",
                "boot a newer kernel",
            )
        )
    return findings


def check_host_limits(
    host: str,
    memlock: Memlock | None,
    memlock_expected: int | None,
    shm: DfEntry | None,
    min_shm: int,
    time_sync: dict[str, Any] | None,
    time_sync_managed: bool,
) -> list[Finding]:
    """Non-fatal: memlock and time sync are what roles/base sets; /dev/shm matters to
    processes outside containers (engines get --shm-size). memlock and /dev/shm are judged by
    ironserve.rules.limits, as ``ironserve health`` judges them."""
    findings = []
    if memlock is None or not memlock_enough(memlock, memlock_expected):
        seen = "unknown" if memlock is None else memlock_text(memlock)
        findings.append(
            Finding(
                host,
                "memlock",
                f"locked memory is {seen}, expected {memlock_expected_text(memlock_expected)}",
                "roles/base sets memlock unlimited (limits.d and dockerd's LimitMEMLOCK)",
                fatal=False,
            )
        )
    size = shm.get("size_bytes") if shm else None
    if size is None or not shm_enough(size, min_shm):
        findings.append(
            Finding(
                host,
                "shm",
                f"/dev/shm is {size} bytes",
                "engine containers get their own (--shm-size); enlarge /dev/shm for others",
                fatal=False,
            )
        )
    if not (time_sync or {}).get("synchronized"):
        findings.append(
            Finding(
                host,
                "time",
                "the clock is not NTP-synchronised",
                "roles/base enables time sync (base_time_sync)"
                if time_sync_managed
                else "set base_time_sync to chrony or systemd-timesyncd",
                fatal=False,
            )
        )
    return findings


def check_npu_tls(host: str, tls: dict[int, Any], wanted: bool) -> list[Finding]:
    """Every NPU's HCCL TLS switch (``hccn_tool -i N -tls -g``) equals the group's npu_tls.

    ``tls`` is the HccnTls fact: ``{}`` when hccn_tool is not installed yet (first provisioning:
    roles/ascend configures TLS then), so that node passes. On a node whose driver is installed
    a different switch is a fault to fix deliberately, not something a run flips silently.
    """
    want = 1 if wanted else 0
    wrong = sorted(
        npu
        for npu, state in tls.items()
        if (state or {}).get("enabled") is None or int(bool(state["enabled"])) != want
    )
    if not wrong:
        return []
    npus = ", ".join(str(n) for n in wrong)
    seen = sorted(
        {
            "unknown" if (tls[n] or {}).get("enabled") is None else str(int(tls[n]["enabled"]))
            for n in wrong
        }
    )
    return [
        Finding(
            host,
            "npu-tls",
            f"HCCL TLS switch is {'/'.join(seen)} on NPU(s) {npus}, the group's npu_tls is "
            f"{want} (HCCL TLS must be identical on every NPU of every node, EI0006 otherwise)",
            "run `hccn_tool -i N -tls -s enable "
            f"{want}` for N in {npus} on {host}, or set npu_tls to match every node",
        )
    ]
