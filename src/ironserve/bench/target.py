"""The endpoint of a serving group, from the inventory's Plan: the head's address and the planned
port, the served model name, and the API key read from ``serving_api_key_file``."""

from __future__ import annotations

from pathlib import Path

from ironserve.bench.runner import Target
from ironserve.config.schema import Cluster
from ironserve.errors import InputError, Problem, did_you_mean
from ironserve.plan.plan import plan_group


def endpoint_of(cluster: Cluster, group: str | None = None, with_key: bool = True) -> Target:
    """The target of ``group`` (the only group when None). Raises InputError naming the field."""
    names = [g.name for g in cluster.groups]
    if group is None and len(names) > 1:
        raise InputError([Problem("cluster", "--group", f"pick one of {', '.join(names)}")])
    chosen = next((g for g in cluster.groups if group in (None, g.name)), None)
    if chosen is None:
        raise InputError(
            [
                Problem(
                    "cluster",
                    "--group",
                    f"{group!r} is not a group{did_you_mean(group or '', names)}",
                )
            ]
        )
    plan = plan_group(chosen)
    head = next(n for n in plan.nodes if n.serves_api)
    key_file = chosen.serving.api_key_file
    api_key = read_key(chosen.head.name, key_file) if key_file and with_key else None
    return Target(
        base_url=f"http://{head.address}:{plan.context.port}/v1",
        model=plan.context.served_name,
        api_key=api_key,
    )


def read_key(host: str, path: Path) -> str:
    try:
        key = path.read_text().strip()
    except OSError as error:
        raise InputError([Problem(host, "serving_api_key_file", str(error))]) from error
    if not key:
        raise InputError([Problem(host, "serving_api_key_file", f"{path} is empty")])
    return key
