"""Ascend node-tier verdicts: pure functions from parsed facts (facts/ascend.py) and the Plan's
expectations (device IPs of the rank table, the group's HCCL TLS switch) to results.

The facts are dicts keyed by NPU id; ``None`` (or ``{}`` from a fact whose tool is missing)
means the tool did not answer: the check is UNKNOWN, never OK.
"""

from __future__ import annotations

from ironserve.facts.ascend import HccnIp, HccnTlsState, NpuHealthState
from ironserve.health.model import CheckResult, Status

TIER = "node"
LINK_RUNBOOK = "npu-link"


def _unknown(check: str, node: str, tool: str, expected: str, runbook: str) -> CheckResult:
    return CheckResult(
        check,
        TIER,
        node,
        Status.UNKNOWN,
        f"{tool} missing or timed out",
        expected,
        "check the Ascend driver is installed (deploys/provision.py)",
        runbook,
    )


def _npus(ids: list[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))


def npu_health(node: str, health: dict[int, NpuHealthState] | None, count: int) -> CheckResult:
    """``ascend.npu_health``: ``npu-smi info -t health`` says OK for every planned NPU."""
    check = "ascend.npu_health"
    expected = f"Health OK on {count} NPU(s)"
    if not health:
        return _unknown(check, node, "npu-smi", expected, "npu-alarm")
    bad = {
        npu: state for npu, state in health.items() if (state.get("health") or "").upper() != "OK"
    }
    missing = [i for i in range(count) if i not in health]
    if not bad and not missing:
        return CheckResult(check, TIER, node, Status.OK, f"OK on {len(health)} NPU(s)", expected)
    parts = [
        f"NPU {npu} {state.get('health') or 'no answer'}"
        + (f" ({state['error_code']})" if state.get("error_code") else "")
        for npu, state in sorted(bad.items())
    ]
    parts += [f"NPU {i} not listed" for i in missing]
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL,
        "; ".join(parts),
        expected,
        "read the alarm (npu-smi info -t health -i N), reset the NPU (npu-smi set -t reset), "
        "reboot, then hardware",
        "npu-alarm",
    )


def hccn_link(
    node: str,
    links: dict[int, str | None] | None,
    net_health: dict[int, str | None] | None,
    count: int,
) -> CheckResult:
    """``ascend.hccn_link``: every NPU's RoCE port is UP and its network health ``Success``
    (``Init``: detection has not run yet, a WARN)."""
    check = "ascend.hccn_link"
    expected = "link UP, net_health Success"
    if not links or not net_health:
        return _unknown(check, node, "hccn_tool", expected, LINK_RUNBOOK)
    down = sorted(i for i in range(count) if (links.get(i) or "").upper() != "UP")
    faulty = sorted(
        i
        for i in range(count)
        if (net_health.get(i) or "") not in ("Success", "Init") and i not in down
    )
    init = sorted(i for i in range(count) if net_health.get(i) == "Init")
    if not down and not faulty and not init:
        return CheckResult(check, TIER, node, Status.OK, f"{count} port(s) UP, Success", expected)
    parts = [f"NPU {i} link {links.get(i) or 'unknown'}" for i in down]
    parts += [f"NPU {i} net_health {net_health.get(i) or 'unknown'}" for i in faulty]
    parts += [f"NPU {i} net_health Init" for i in init if i not in down]
    status = Status.FAIL if down or faulty else Status.WARN
    return CheckResult(
        check,
        TIER,
        node,
        status,
        "; ".join(parts),
        expected,
        "check the NPU port's cable/optics and switch port; hccn_tool -i N -net_health -g",
        LINK_RUNBOOK,
    )


def hccn_ip(
    node: str, ips: dict[int, HccnIp] | None, planned: list[str], count: int
) -> CheckResult:
    """``ascend.hccn_ip``: every NPU port has an address, the one the rank table (the inventory's
    npu_device_ips, in NPU order) names where it names one."""
    check = "ascend.hccn_ip"
    expected = ", ".join(planned) if planned else "an address on every NPU"
    if not ips:
        return _unknown(check, node, "hccn_tool", expected, LINK_RUNBOOK)
    wrong = []
    for i in range(count):
        entry = ips.get(i)
        have = entry["ipaddr"] if entry else None
        want = planned[i] if i < len(planned) else None
        if have is None or (want is not None and have != want):
            wrong.append(f"NPU {i} {have or 'unconfigured'}" + (f" != {want}" if want else ""))
    if not wrong:
        return CheckResult(
            check, TIER, node, Status.OK, f"{count} address(es) as planned", expected
        )
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL,
        "; ".join(wrong),
        expected,
        "pyinfra -y --limit NODE INVENTORY deploys/provision.py (writes hccn_tool -ip -s)",
        LINK_RUNBOOK,
    )


def hccn_tls(
    node: str, tls: dict[int, HccnTlsState] | None, wanted: bool, count: int
) -> CheckResult:
    """``ascend.hccn_tls``: the HCCL TLS switch is the same on every NPU and equals the group's
    npu_tls (a different switch on any NPU of any node fails HCCL with EI0006)."""
    check = "ascend.hccn_tls"
    want = 1 if wanted else 0
    expected = f"tls switch {want} on every NPU"
    if not tls:
        return _unknown(check, node, "hccn_tool", expected, "npu-tls")
    seen = {
        i: None if state is None or state["enabled"] is None else int(state["enabled"])
        for i, state in ((i, tls.get(i)) for i in range(count))
    }
    wrong = sorted(i for i, v in seen.items() if v != want)
    if not wrong:
        return CheckResult(check, TIER, node, Status.OK, f"tls switch {want}", expected)
    values = sorted({str(seen[i]) for i in wrong})
    return CheckResult(
        check,
        TIER,
        node,
        Status.FAIL,
        f"tls switch {'/'.join(values)} on NPU {_npus(wrong)}",
        expected,
        f"hccn_tool -i N -tls -s enable {want} on those NPUs (or set npu_tls for every node)",
        "npu-tls",
    )
