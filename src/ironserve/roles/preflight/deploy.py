"""roles/preflight: read-only checks of every node, before any change on any node.

The first host to reach this deploy checks *all* hosts of the run (facts only, no operation is
added), every other host waits for that result. Each host is judged on its own data
(``PreflightData.of(h)``: its inventory values, else the defaults) by ironserve.rules, the rules
``ironserve health`` applies. One failing node stops the whole run: the
DeployError names each host, check and remedy, and pyinfra executes nothing.
"""

from __future__ import annotations

import weakref
from typing import Any

from gevent.lock import Semaphore  # type: ignore[import-untyped]
from pyinfra import logger
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.facts.server import KernelVersion, LinuxDistribution

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.deploy.reach import group_block_reason
from ironserve.facts.ascend import HccnTls
from ironserve.facts.host import (
    DirBytes,
    FreeDiskBytes,
    MemlockLimit,
    PciDevices,
    ShmSize,
    TimeSync,
)
from ironserve.roles import FACT_TIMEOUT_S, plan_of, run_of
from ironserve.roles.base.defaults import BaseData
from ironserve.roles.container_runtime.defaults import ContainerRuntimeData
from ironserve.roles.preflight.checks import (
    Finding,
    check_accelerators,
    check_disk,
    check_host_limits,
    check_network,
    check_npu_tls,
    check_os,
)
from ironserve.roles.preflight.defaults import DEFAULTS, PreflightData
from ironserve.roles.preflight.facts import InterfaceAddresses
from ironserve.rules.limits import memlock_expected

_LOCK = Semaphore()
_RESULTS: weakref.WeakKeyDictionary[Any, list[Finding]] = weakref.WeakKeyDictionary()


def host_findings(run: Any, h: Any) -> list[Finding]:
    """Every preflight finding for host ``h`` (gathers its facts; changes nothing). Each
    threshold is ``h``'s own data (typed role data), judged by ironserve.rules. Every fact has
    a timeout (:data:`FACT_TIMEOUT_S`): a hung tool fails the fact, it does not hang the run."""
    hp = plan_of(run, h)
    data, base = PreflightData.of(h), BaseData.of(h)
    runtime = ContainerRuntimeData.of(h)
    node, accel = hp.node, ACCELERATORS[hp.node.accelerator.kind]
    weights_dir = hp.group.model.weights_dir
    findings = check_accelerators(
        h.name,
        list(h.get_fact(PciDevices, _timeout=FACT_TIMEOUT_S)),
        accel,
        node.accelerator.count,
    )
    findings += check_network(
        h.name,
        dict(h.get_fact(InterfaceAddresses, _timeout=FACT_TIMEOUT_S)),
        node.network.socket_ifname,
        str(node.node.ip),
    )
    findings += check_disk(
        h.name,
        weights_dir,
        h.get_fact(FreeDiskBytes, _timeout=FACT_TIMEOUT_S, path=weights_dir),
        hp.plan.disk_of(h.name),
        h.get_fact(DirBytes, _timeout=FACT_TIMEOUT_S, path=hp.plan.context.weights_path),
    )
    findings += check_os(
        h.name,
        h.get_fact(LinuxDistribution, _timeout=FACT_TIMEOUT_S),
        h.get_fact(KernelVersion, _timeout=FACT_TIMEOUT_S),
        data.preflight_distributions,
        data.preflight_min_kernel,
    )
    if accel.vendor == "ascend":  # {} until the driver (hccn_tool) is installed: passes
        tls = dict(h.get_fact(HccnTls, _timeout=FACT_TIMEOUT_S, npu_count=node.accelerator.count))
        findings += check_npu_tls(h.name, tls, bool(hp.plan.context.npu_tls))
    findings += check_host_limits(
        h.name,
        h.get_fact(MemlockLimit, _timeout=FACT_TIMEOUT_S),
        memlock_expected(base.base_memlock_unlimited, runtime.container_runtime_daemon_settings),
        h.get_fact(ShmSize, _timeout=FACT_TIMEOUT_S),
        data.preflight_min_shm_bytes,
        h.get_fact(TimeSync, _timeout=FACT_TIMEOUT_S),
        base.base_time_sync is not None,
    )
    return findings


def cluster_findings(run: Any) -> list[Finding]:
    """Findings for every active host of the run, computed once per run (not for the nodes of
    a serving group that has an unreachable node: that group is out of the run)."""
    run = run_of(run)
    with _LOCK:
        if run not in _RESULTS:
            findings: list[Finding] = []
            for h in run.inventory.get_active_hosts():
                if group_block_reason(run, h.name) is not None:
                    continue
                findings += host_findings(run, h)
            _RESULTS[run] = findings
            for f in findings:
                if not f.fatal:
                    logger.warning(f"    preflight note: {f.line()}")
        return _RESULTS[run]


def failure_message(findings: list[Finding]) -> str:
    fatal = [f for f in findings if f.fatal]
    lines = [f"preflight failed on {len({f.host for f in fatal})} node(s); nothing was changed:"]
    lines += [f"  - {f.line()}" for f in fatal]
    return "\n".join(lines)


@deploy("Preflight", data_defaults=DEFAULTS)
def deploy_preflight() -> None:
    """Check every node of the run; raise DeployError (before any operation) on a failure."""
    findings = cluster_findings(state)
    if any(f.fatal for f in findings):
        raise DeployError(failure_message(findings))
    plan_of(state, host)  # the current host is in the plan (validated above)
