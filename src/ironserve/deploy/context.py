"""The Plan as roles see it. Roles never recompute parallelism, ranks, ports or flags: they ask
for the plan of the host they run on, computed once per pyinfra run from the live inventory
(the same data `ironserve validate` and `ironserve plan` read).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from ironserve.config.inventory import HostRecord
from ironserve.config.loader import build_cluster
from ironserve.config.schema import Node, ServingGroup
from ironserve.engines.base import NodeLaunch
from ironserve.plan.plan import Plan, plan_cluster


@dataclass(frozen=True)
class HostPlan:
    """Everything a role needs to know about one host."""

    group: ServingGroup
    node: Node
    plan: Plan
    launch: NodeLaunch


# Per pyinfra State (one run): every host's plan, computed on first use. Keyed by the State
# itself, weakly: an id() could be reused by a later State once this one is gone.
_RUNS: weakref.WeakKeyDictionary[Any, dict[str, HostPlan]] = weakref.WeakKeyDictionary()


def _records(inventory: Any) -> list[HostRecord]:
    return [
        HostRecord(h.name, tuple(g for g in h.groups if not g.startswith("@")), dict(h.data.dict()))
        for h in inventory
    ]


def run_state(state: Any) -> Any:
    """The State object itself: roles get pyinfra's context proxy (``from pyinfra import
    state``), one object for every run of the process, so it cannot key per-run caches."""
    unwrap = getattr(type(state), "_get_module", None)
    return unwrap(state) if unwrap is not None else state


def host_plans(state: Any) -> dict[str, HostPlan]:
    """Every host's plan in this run, by host name (raises InputError for a bad inventory)."""
    key = run_state(state)
    if key not in _RUNS:
        plans: dict[str, HostPlan] = {}
        cluster = build_cluster(_records(state.inventory))
        for group, plan in zip(cluster.groups, plan_cluster(cluster), strict=True):
            for node in group.nodes:
                plans[node.name] = HostPlan(group, node, plan, plan.node(node.name))
        _RUNS[key] = plans
    return _RUNS[key]


def host_plan(state: Any, host: Any) -> HostPlan:
    """The plan of ``host`` in this run."""
    return host_plans(state)[host.name]
