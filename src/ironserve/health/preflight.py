"""``ironserve health --tier preflight``: the provisioning preflight (roles/preflight), read-only.

The same findings ``deploys/provision.py`` stops on (``roles.preflight.deploy.host_findings``:
facts only, nothing changed on any node), one result per check and node: a fatal finding is
FAIL, a note (memlock, /dev/shm, time sync: things the roles fix) WARN, no finding OK. The
role is the package's own (``ironserve.roles.preflight``), the one a deploy runs.
"""

from __future__ import annotations

from typing import Any

import gevent  # type: ignore[import-untyped]

from ironserve.health import node_checks
from ironserve.health.model import CheckResult, Status

TIER = "preflight"
# preflight check -> runbook of the failure it means
BOOK_OF_CHECK = {
    "accelerators": "gpu-missing",
    "disk": "disk-full",
    "memlock": "host-limits",
    "shm": "host-limits",
    "time": "host-limits",
    "npu-tls": "npu-tls",
}
CHECKS = ("accelerators", "network", "disk", "os", "kernel", "memlock", "shm", "time")


def to_results(node: str, findings: list[Any], ascend: bool) -> list[CheckResult]:
    """One result per preflight check of ``node`` from its ``Finding`` list."""
    checks = [*CHECKS, "npu-tls"] if ascend else list(CHECKS)
    checks += [f.check for f in findings if f.check not in checks]
    results = []
    for check in checks:
        found = [f for f in findings if f.check == check]
        if not found:
            results.append(CheckResult(f"preflight.{check}", TIER, node, Status.OK, "ok", "ok"))
            continue
        fatal = any(f.fatal for f in found)
        results.append(
            CheckResult(
                f"preflight.{check}",
                TIER,
                node,
                Status.FAIL if fatal else Status.WARN,
                "; ".join(f.message for f in found),
                "no finding" if fatal else "no note",
                "; ".join(dict.fromkeys(f.remedy for f in found)),
                BOOK_OF_CHECK.get(check, ""),
            )
        )
    return results


def _host(state: Any, host: Any) -> list[CheckResult]:
    from pyinfra.context import ctx_host, ctx_state

    from ironserve.health.runner import vendor_of
    from ironserve.roles.preflight.deploy import host_findings

    with ctx_state.use(state), ctx_host.use(host):
        host.connect(show_errors=False)
        if not host.connected:
            return [node_checks.unreachable(host.name, "SSH connection failed")]
        try:
            findings = host_findings(state, host)
        except Exception as error:  # a fact that failed or timed out: not a verdict
            return [
                CheckResult(
                    "preflight.facts",
                    TIER,
                    host.name,
                    Status.UNKNOWN,
                    f"preflight facts failed: {error}"[:300],
                    "every fact answers",
                    "run the preflight with pyinfra to see the failing fact",
                )
            ]
    ascend = vendor_of(str(host.data.get("accelerator_kind") or "")) == "ascend"
    return to_results(host.name, list(findings), ascend)


def timed_out(node: str) -> CheckResult:
    from ironserve.health.runner import NODE_TIMEOUT_S

    return CheckResult(
        "preflight.facts",
        TIER,
        node,
        Status.UNKNOWN,
        f"preflight facts did not finish in {NODE_TIMEOUT_S}s",
        "every fact answers",
        "check the node's load and SSH",
        "node-down",
    )


def run_preflight_tier(
    inventory: str, node: str | None = None
) -> tuple[list[str], list[CheckResult]]:
    from ironserve.deploy.context import host_plans
    from ironserve.health.runner import NODE_TIMEOUT_S, _state

    state, hosts = _state(inventory, node)
    host_plans(state)  # the Plan first: a bad inventory raises InputError (exit 2)
    jobs = {h.name: gevent.spawn(_host, state, h) for h in hosts}
    # Each fact has its own timeout (roles.preflight.deploy.FACT_TIMEOUT_S); this bounds a node
    # whose SSH session hangs between them.
    gevent.joinall(list(jobs.values()), timeout=NODE_TIMEOUT_S)
    results: list[CheckResult] = []
    for name, job in jobs.items():
        if not job.ready():
            job.kill(block=False)
            results.append(timed_out(name))
        elif job.successful():
            results.extend(job.value)
        else:
            results.append(node_checks.unreachable(name, str(job.exception)))
    return list(jobs), results
