"""Connect to every node in parallel over SSH (pyinfra API) and run the node-tier checks.

Each node is probed in its own greenlet; every fact has a timeout (:data:`CHECK_TIMEOUT_S`) and
a fact that fails, times out or whose tool is missing becomes ``None``, which the verdict
functions turn into UNKNOWN (never OK). What a node is expected to have comes from the Plan
(``ironserve.deploy.context.host_plans``: weights path and size, HCAs, NPU addresses, TLS) and
from the roles' data keys (driver branch, persistence, memlock, time sync), as provisioning
sees them: each host's own values through the roles' typed data (``RoleData.of``), judged
by the same rules (``ironserve.rules``) as provisioning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gevent  # type: ignore[import-untyped]
from pyinfra.facts.server import Which

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.errors import InputError, Problem
from ironserve.facts.ascend import HccnDeviceIps, HccnLinks, HccnNetHealth, HccnTls, NpuHealth
from ironserve.facts.docker import DockerRuntimes
from ironserve.facts.host import (
    DirBytes,
    FreeDiskBytes,
    IommuEnabled,
    MemlockLimit,
    PciDevices,
    ShmSize,
    TimeSync,
)
from ironserve.facts.nvidia import NvidiaDriver, NvidiaGpus, NvidiaXidEvents, NvSwitchPresent
from ironserve.facts.rdma import IbPorts
from ironserve.health import ascend_checks, host_checks, node_checks, nvidia_checks
from ironserve.health.model import CheckResult, Status
from ironserve.rules.fabric import fabric_manager_wanted, node_hcas
from ironserve.rules.limits import memlock_expected

CHECK_TIMEOUT_S = 20
# A node whose checks together take longer than this is reported UNKNOWN (a hung SSH session).
NODE_TIMEOUT_S = 120


def _state(inventory_path: str, limit: str | None) -> Any:
    from ironserve.deploy.transport import open_state

    state = open_state(inventory_path)
    hosts = [h for h in state.inventory if limit is None or h.name == limit]
    return state, hosts


@dataclass(frozen=True)
class RoleModels:
    """The roles' typed data models (``ironserve.roles.<role>.defaults``) health reads a host
    through: what provisioning uses."""

    preflight: Any
    base: Any
    container_runtime: Any
    nvidia: Any


@lru_cache(maxsize=1)
def role_models() -> RoleModels:
    from ironserve.roles.base.defaults import BaseData
    from ironserve.roles.container_runtime.defaults import ContainerRuntimeData
    from ironserve.roles.nvidia.defaults import NvidiaData
    from ironserve.roles.preflight.defaults import PreflightData

    return RoleModels(PreflightData, BaseData, ContainerRuntimeData, NvidiaData)


def _plans(state: Any) -> dict[str, Any]:
    """Every host's HostPlan; {} when the inventory does not plan (checks then expect "any")."""
    from ironserve.deploy.context import host_plans

    try:
        return dict(host_plans(state))
    except Exception:
        return {}


def check_role_data(hosts: list[Any], models: RoleModels) -> None:
    """Every host's role data typed before any SSH: a bad value is bad input (InputError, exit
    2) naming host and key, not a node that looks unreachable."""
    problems: list[Problem] = []
    for host in hosts:
        for model in (models.preflight, models.base, models.container_runtime, models.nvidia):
            try:
                model.of(host)
            except InputError as error:
                problems += error.problems
    if problems:
        raise InputError(problems)


class _Node:
    """One host's data: its roles' typed values, and a fact getter that never raises."""

    def __init__(self, host: Any, models: RoleModels) -> None:
        self.host = host
        self.data = dict(host.data.dict())
        self.preflight = models.preflight.of(host)
        self.base = models.base.of(host)
        self.container_runtime = models.container_runtime.of(host)
        self.nvidia = models.nvidia.of(host)

    def fact(self, cls: Any, **kwargs: Any) -> Any:
        try:
            return self.host.get_fact(cls, _timeout=CHECK_TIMEOUT_S, **kwargs)
        except Exception:
            return None

    def has(self, command: str) -> bool | None:
        """Whether ``command`` is on the node's PATH; None when the node did not answer."""
        try:
            return bool(self.host.get_fact(Which, command=command, _timeout=CHECK_TIMEOUT_S))
        except Exception:
            return None


def _cuda_of(package: str | None) -> str | None:
    """``cuda-toolkit-12-8`` -> ``12.8``."""
    parts = (package or "").rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return f"{parts[1]}.{parts[2]}"
    return None


def _host_checks(n: _Node, hp: Any, vendor: str, pci: list[dict[str, Any]] | None) -> list[Any]:
    name = n.host.name
    results: list[CheckResult | None] = []
    if hp is not None:
        weights_dir = str(hp.group.model.weights_dir)
        free = n.fact(FreeDiskBytes, path=weights_dir)
        present = n.fact(DirBytes, path=hp.plan.context.weights_path) or 0
        planned = hp.plan.disk_of(name)
        results.append(host_checks.disk(name, weights_dir, free, present, planned))
    else:
        weights_dir = str(n.data.get("model_weights_dir") or "/data/models")
        free = n.fact(FreeDiskBytes, path=weights_dir)
        results.append(host_checks.disk(name, weights_dir, free, 0, None))
    shm_min = int(n.preflight.preflight_min_shm_bytes)
    results.append(host_checks.shm(name, n.fact(ShmSize), shm_min))
    expected = memlock_expected(
        n.base.base_memlock_unlimited, n.container_runtime.container_runtime_daemon_settings
    )
    results.append(host_checks.memlock(name, n.fact(MemlockLimit), expected))
    results.append(host_checks.time_sync(name, n.fact(TimeSync), n.base.base_time_sync))
    docker = n.has("docker")
    runtimes = n.fact(DockerRuntimes) if docker else None
    results.append(host_checks.container_runtime(name, runtimes, bool(docker), vendor == "nvidia"))
    hcas = node_hcas(list(hp.node.network.ib_hcas) if hp is not None else [], pci)
    if hcas:  # only nodes with HCAs (inventory, else Mellanox functions on the bus)
        ports = n.fact(IbPorts) if n.has("ibstat") else None
        results.append(host_checks.ib_ports(name, ports, hcas))
    return results


def _nvidia_checks(n: _Node) -> list[Any]:
    name = n.host.name
    expected = int(n.data.get("accelerator_count") or 0)
    # a missing nvidia-smi or a timeout is UNKNOWN, never "0 GPUs" and never OK
    has_smi = n.has("nvidia-smi")
    gpus = n.fact(NvidiaGpus) if has_smi else None
    info = n.fact(NvidiaDriver) if has_smi else None
    events = n.fact(NvidiaXidEvents)
    setting = n.nvidia.nvidia_fabricmanager
    nvswitch = fabric_manager_wanted(
        setting, n.fact(NvSwitchPresent) if setting == "auto" else None
    )
    return [
        node_checks.gpu_count(name, gpus, expected),
        node_checks.gpu_xid(name, events),
        *node_checks.gpu_ecc(name, gpus),
        nvidia_checks.driver(
            name,
            info,
            gpus,
            n.nvidia.nvidia_driver_branch or None,
            _cuda_of(n.nvidia.nvidia_cuda_toolkit_package),
            n.nvidia.nvidia_driver_version or None,
        ),
        nvidia_checks.persistence(name, gpus, n.nvidia.nvidia_persistence_mode),
        nvidia_checks.fabric_manager(name, nvswitch, gpus),
        nvidia_checks.pcie_width(name, gpus),
        nvidia_checks.throttle(name, gpus),
    ]


def _ascend_checks(n: _Node, hp: Any) -> list[Any]:
    name = n.host.name
    count = int(n.data.get("accelerator_count") or 8)
    planned = [str(ip) for ip in hp.node.npu.device_ips] if hp is not None else []
    tls = bool(hp.node.npu.tls) if hp is not None else False
    return [
        ascend_checks.npu_health(name, n.fact(NpuHealth, npu_count=count), count),
        ascend_checks.hccn_link(
            name, n.fact(HccnLinks, npu_count=count), n.fact(HccnNetHealth, npu_count=count), count
        ),
        ascend_checks.hccn_ip(name, n.fact(HccnDeviceIps, npu_count=count), planned, count),
        ascend_checks.hccn_tls(name, n.fact(HccnTls, npu_count=count), tls, count),
    ]


def _vastai_checks(n: _Node, pci: list[dict[str, Any]] | None) -> list[Any]:
    name = n.host.name
    expected = int(n.data.get("accelerator_count") or 0)
    return [
        host_checks.vastai_devices(name, pci, expected),
        host_checks.vastai_iommu(name, n.fact(IommuEnabled)),
    ]


def vendor_of(kind: str) -> str:
    """``nvidia``, ``ascend`` or ``vastai`` for a catalog accelerator id (unknown: nvidia)."""
    accel = ACCELERATORS.get(kind)
    if accel is not None:
        return str(getattr(accel.vendor, "value", accel.vendor))
    lowered = kind.lower()
    if "ascend" in lowered or "npu" in lowered:
        return "ascend"
    return "vastai" if "vastai" in lowered or lowered.startswith("va") else "nvidia"


def _facts(state: Any, host: Any, hp: Any, models: RoleModels) -> list[CheckResult]:
    from ironserve.deploy.transport import on

    name = host.name
    with on(state, host) as connected:
        if not connected:
            return [node_checks.unreachable(name, "SSH connection failed")]
        n = _Node(host, models)
        vendor = vendor_of(str(n.data.get("accelerator_kind") or ""))
        pci = n.fact(PciDevices) if n.has("lspci") else None
        results = _host_checks(n, hp, vendor, pci)
        if vendor == "nvidia":
            results += _nvidia_checks(n)
        elif vendor == "ascend":
            results += _ascend_checks(n, hp)
        elif vendor == "vastai":
            results += _vastai_checks(n, pci)
    return [r for r in results if r is not None]


def _timed_out(name: str) -> CheckResult:
    return CheckResult(
        "host.checks",
        "node",
        name,
        Status.UNKNOWN,
        f"node checks did not finish in {NODE_TIMEOUT_S}s",
        "every check answers",
        "check the node's load and SSH",
        "node-down",
    )


def run_node_tier(
    inventory_path: str, node: str | None = None
) -> tuple[list[str], list[CheckResult]]:
    state, hosts = _state(inventory_path, node)
    plans = _plans(state)
    models = role_models()
    check_role_data(hosts, models)
    jobs: dict[str, Any] = {}
    run: Callable[..., list[CheckResult]] = _facts
    for host in hosts:
        jobs[host.name] = gevent.spawn(run, state, host, plans.get(host.name), models)
    gevent.joinall(list(jobs.values()), timeout=NODE_TIMEOUT_S)
    results: list[CheckResult] = []
    for name, job in jobs.items():
        if not job.ready():
            job.kill(block=False)
            results.append(_timed_out(name))
        elif job.successful():
            results.extend(job.value)
        else:
            results.append(node_checks.unreachable(name, str(job.exception)))
    return list(jobs), results
