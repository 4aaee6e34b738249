"""Joining the running Ray cluster and reserving TP x PP GPUs the way vLLM's Ray executor does.

vLLM (vllm/executor/ray_utils.py initialize_ray_cluster) connects with ``ray.init(address=
"auto")``, checks the cluster has enough GPUs, creates a placement group of TP x PP ``{"GPU": 1}``
bundles (the first one pinned to the driver's node with ``node:<ip>``) and waits for it, logging
every so often and failing after a timeout. Here the same, with the real Ray; then one task per
node inside the group checks that node's copy of the weights, as each vLLM worker would read it.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

from . import weights

WAIT_ENV = "IRONSERVE_LAB_PG_TIMEOUT"  # seconds to wait for the placement group (vLLM: 1800)


def log(message: str) -> None:
    print(
        f"INFO {time.strftime('%m-%d %H:%M:%S')} [ray_utils.py] {message}",
        file=sys.stderr,
        flush=True,
    )


def _ray() -> Any:
    return importlib.import_module("ray")


def _gpus_by_node(ray: Any) -> dict[str, float]:
    return {
        str(node["NodeManagerAddress"]): float(node["Resources"].get("GPU", 0.0))
        for node in ray.nodes()
        if node.get("Alive")
    }


def _check_weights_here(path: str, tp: int, pp: int) -> tuple[str, str | None]:
    """Runs on one Ray node (in the placement group): that node's weights, checked."""
    ray = _ray()
    ip = str(ray.util.get_node_ip_address())
    try:
        weights.check(path, tp, pp)
    except weights.WeightsError as error:
        return ip, str(error)
    return ip, None


def reserve(model: str, tp: int, pp: int) -> Any:
    """Join Ray, reserve TP x PP GPUs, check the weights on every node of the group.

    Returns the placement group (kept for as long as this process serves: its bundles stay
    reserved, so `ray status` shows the GPUs in use). Raises RuntimeError on failure.
    """
    ray = _ray()
    pg_util = importlib.import_module("ray.util.placement_group")
    strategies = importlib.import_module("ray.util.scheduling_strategies")
    need = tp * pp
    ray.init(address="auto", log_to_driver=False, logging_level="WARNING")
    here = os.environ.get("VLLM_HOST_IP") or str(ray.util.get_node_ip_address())
    by_node = _gpus_by_node(ray)
    total = sum(by_node.values())
    log(
        f"Connected to Ray cluster: {len(by_node)} node(s), {total:g} GPU(s): "
        + ", ".join(f"{ip}={gpus:g}" for ip, gpus in sorted(by_node.items()))
    )
    if total < need:
        raise RuntimeError(
            f"The number of required GPUs ({need} = tensor_parallel_size {tp} x "
            f"pipeline_parallel_size {pp}) exceeds the total number of GPUs in the Ray cluster "
            f"({total:g} on {len(by_node)} node(s)). Check `ray status`."
        )
    if by_node.get(here, 0.0) < 1:
        raise RuntimeError(
            f"Ray does not allocate any GPUs on the driver node ({here}). Consider adjusting "
            "the Ray placement group or running the driver on a GPU node."
        )
    bundles: list[dict[str, float]] = [{"GPU": 1.0} for _ in range(need)]
    bundles[0][f"node:{here}"] = 0.001
    group = pg_util.placement_group(bundles, strategy="PACK")
    timeout = float(os.environ.get(WAIT_ENV, "1800"))
    started = time.monotonic()
    interval = 10.0
    while True:
        ready, _ = ray.wait([group.ready()], timeout=interval)
        if ready:
            break
        waited = time.monotonic() - started
        free = ray.available_resources().get("GPU", 0.0)
        log(
            f"Waiting for creating a placement group of specs for {waited:.0f} seconds. "
            f"specs={bundles}. {need} GPU needed, {free:g} free on "
            f"{len(_gpus_by_node(ray))} alive node(s). Check `ray status` and `ray list nodes` "
            "to see if you have enough resources."
        )
        if waited >= timeout:
            pg_util.remove_placement_group(group)
            raise RuntimeError(
                f"Cannot provide a placement group of placement_group_specs={bundles} within "
                f"{timeout:g} seconds. See `ray status` to make sure the cluster has enough "
                "resources."
            )
        interval = min(interval * 2, 60.0)
    table = pg_util.placement_group_table(group)
    first_bundle: dict[str, int] = {}
    for index, node_id in sorted(table["bundles_to_node_id"].items()):
        first_bundle.setdefault(node_id, int(index))
    log(
        f"Placement group ready in {time.monotonic() - started:.1f}s: {need} GPU bundle(s) on "
        f"{len(first_bundle)} node(s)"
    )
    check = ray.remote(num_gpus=1, num_cpus=0)(_check_weights_here)
    refs = [
        check.options(
            scheduling_strategy=strategies.PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=index
            )
        ).remote(model, tp, pp)
        for index in first_bundle.values()
    ]
    problems = []
    for ip, problem in ray.get(refs, timeout=max(60.0, timeout)):
        if problem:
            problems.append(f"{ip}: {problem}")
        else:
            log(f"weights present and well-formed on {ip}")
    if problems:
        raise RuntimeError("weights check failed on worker node(s): " + "; ".join(problems))
    return group
