"""Unreachable nodes fail their serving group, not the run.

pyinfra 3.x drops a host it cannot connect to (paramiko, CONNECT_TIMEOUT 10 s) and goes on with
the others, exiting 1 at the end; only with ``--fail-percent`` (or its interactive "continue?"
prompt, without ``-y``) may it stop the whole run at connect time. A serving group with a
missing node cannot serve, so its other nodes must not be changed either:
:func:`stop_if_group_unreachable` (first thing in deploys/provision.py) takes them out of the run
before any of their operations exist, the other groups go on, and a summary per serving group is
printed when pyinfra exits.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from typing import Any

from ironserve.deploy.context import host_plans, run_state

# Runs whose exit summary is registered (one per pyinfra State).
_SUMMARIES: weakref.WeakSet[Any] = weakref.WeakSet()


def unconnected(state: Any) -> set[str]:
    """Names of the hosts of this run that pyinfra tried and failed to connect to."""
    run = run_state(state)
    return {
        h.name for h in run.failed_hosts if h not in run.activated_hosts and run.is_host_in_limit(h)
    }


def blocked_groups(state: Any) -> dict[str, list[str]]:
    """Serving group -> its unreachable nodes, for every group that has one."""
    down = unconnected(state)
    if not down:
        return {}
    blocked: dict[str, list[str]] = {}
    for name, hp in host_plans(state).items():
        if name in down:
            blocked.setdefault(hp.group.name, []).append(name)
    return {group: sorted(names) for group, names in blocked.items()}


def group_block_reason(state: Any, host_name: str) -> str | None:
    """Why ``host_name``'s serving group cannot be provisioned in this run, or None."""
    blocked = blocked_groups(state)
    hp = host_plans(state).get(host_name) if blocked else None
    if hp is None:
        return None
    down = blocked.get(hp.group.name)
    if not down:
        return None
    return (
        f"serving group {hp.group.name!r} failed: node(s) {', '.join(down)} unreachable "
        "(SSH connect failed); its other nodes are left unchanged. Remedy: bring "
        f"{', '.join(down)} back (or remove it from the group) and run again"
    )


def group_members(state: Any) -> dict[str, list[str]]:
    """Serving group -> its nodes, in plan order."""
    members: dict[str, list[str]] = {}
    for name, hp in host_plans(state).items():
        members.setdefault(hp.group.name, []).append(name)
    return members


def summary_lines(
    members: dict[str, list[str]], unreachable: set[str], failed: set[str]
) -> list[str]:
    """One line per serving group: ok, or FAILED naming the unreachable and the failed nodes."""
    lines = []
    for group, names in members.items():
        down = [n for n in names if n in unreachable]
        other = [n for n in names if n in failed and n not in unreachable]
        if down:
            lines.append(
                f"serving group {group!r}: FAILED: unreachable {', '.join(down)}"
                + (f"; not provisioned {', '.join(other)}" if other else "")
            )
        elif other:
            lines.append(f"serving group {group!r}: FAILED on {', '.join(other)}")
        else:
            lines.append(f"serving group {group!r}: ok ({', '.join(names)})")
    return lines


def _print_summary(run: Any, members: dict[str, list[str]], unreachable: set[str]) -> None:
    try:
        failed = {str(h.name) for h in run.failed_hosts}
        lines = summary_lines(members, unreachable, failed)
    except Exception as error:  # never mask pyinfra's own exit
        lines = [f"(no serving group summary: {error!r})"]
    print("--> Serving groups:", file=sys.stderr)
    for line in lines:
        print(f"    {line}", file=sys.stderr)
    sys.stderr.flush()


def stop_if_group_unreachable(state: Any, host: Any, logger: Any = None) -> bool:
    """True (and ``host`` taken out of the run) when a node of its serving group is unreachable.

    Registers the per-group summary, printed when the process exits (after pyinfra's results)."""
    run = run_state(state)
    if not unconnected(run):
        return False
    if run not in _SUMMARIES:
        _SUMMARIES.add(run)
        atexit.register(_print_summary, run, group_members(run), unconnected(run))
    reason = group_block_reason(run, host.name)
    if reason is None:
        return False
    if logger is not None:
        logger.error(f"{host.print_prefix}{reason}")
    # The Host itself, not pyinfra's context proxy. Not State.fail_hosts: --fail-percent (and the
    # interactive "continue?" prompt) already judged the nodes that failed to connect; the rest
    # of their group is our policy, and must not abort the other groups with "No hosts remaining".
    node = run_state(host)
    run.failed_hosts.add(node)
    run.active_hosts.discard(node)
    return True
