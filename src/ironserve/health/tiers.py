"""Which tiers a ``--tier`` runs, run at once: ``all`` = node + cluster + serving, side by side
(each tier reaches every node in parallel itself), so the whole run takes about as long as its
slowest check.

A serving group that is not deployed (no engine container on its head) gets one
``cluster.deployed`` WARN and no serving results: there is no endpoint to judge yet.
``preflight`` is the pre-deploy tier: its runner is :data:`PREFLIGHT` (``ironserve.health.
preflight.run_preflight_tier(inventory, node) -> (nodes, results)``), not run by ``all``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gevent  # type: ignore[import-untyped]

from ironserve.config.inventory import HostRecord
from ironserve.config.loader import build_cluster
from ironserve.deploy import transport
from ironserve.health import cluster_tier, serving_tier
from ironserve.health.model import TIERS as TIERS  # the tier names, re-exported
from ironserve.health.model import CheckResult

PREFLIGHT = ("ironserve.health.preflight", "run_preflight_tier")


class TierMissing(RuntimeError):
    """The tier's runner is not in this build."""


def _preflight(inventory: str, node: str | None) -> tuple[list[str], list[CheckResult]]:
    module, name = PREFLIGHT
    try:
        runner = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise TierMissing(f"--tier preflight: {module}.{name} is not available") from error
    nodes, results = runner(inventory, node)
    return list(nodes), list(results)


def _remote_reader(state: Any) -> Callable[[str, str], str | None]:
    """Read a small root-only file on a node over SSH (the serving node's 0600 env file)."""

    def read(node: str, path: str) -> str | None:
        return transport.read_file(state, state.inventory.get_host(node), path, timeout=20)

    return read


def run(
    inventory: str, records: list[HostRecord], tier: str, node: str | None = None
) -> tuple[list[str], list[CheckResult]]:
    """(nodes, results) of ``tier``; raises InputError when the inventory does not plan (cluster
    and serving need the Plan) and TierMissing for a tier this build lacks."""
    if tier == "preflight":
        return _preflight(inventory, node)
    from ironserve.health.runner import run_node_tier

    names = [r.name for r in records if node is None or r.name == node]
    if tier == "node":
        return run_node_tier(inventory, node)
    plans = cluster_tier.group_plans(build_cluster(records))
    by_name = {r.name: r for r in records}
    state = transport.open_state(inventory)
    jobs: dict[str, Any] = {}
    if tier == "all":
        jobs["node"] = gevent.spawn(run_node_tier, inventory, node)
    if tier in ("cluster", "all"):
        jobs["cluster"] = gevent.spawn(cluster_tier.run_cluster_tier, inventory, plans, node, state)
    else:  # serving alone: whether each group is deployed (its head's container) only
        jobs["cluster"] = gevent.spawn(cluster_tier.deployed, state, plans)
    if tier in ("serving", "all"):
        jobs["serving"] = gevent.spawn(
            serving_tier.run_serving_tier, plans, by_name, node, _remote_reader(state)
        )
    gevent.joinall(list(jobs.values()))
    for job in jobs.values():
        if not job.successful():
            raise job.exception
    nodes, results = jobs["node"].value if "node" in jobs else (names, [])
    cluster_results: list[CheckResult] = jobs["cluster"].value
    undeployed = {
        serving_tier.endpoint_of(gp, None).node
        for gp in plans
        if any(r.check == "cluster.deployed" and r.node == gp.head for r in cluster_results)
    }
    if tier in ("cluster", "all") or undeployed:
        results = [*results, *cluster_results]
    if "serving" in jobs:
        results += [r for r in jobs["serving"].value if r.node not in undeployed]
    return list(nodes), results
