"""The endpoint of a serving group, from the inventory's Plan (``Plan.endpoint``: the serving
node's address and port, the served model name) and its API key from where the Plan says
(``Plan.api_key``), read with the 0600 check every reader shares."""

from __future__ import annotations

from pathlib import Path

from ironserve.bench.runner import Target
from ironserve.config.schema import Cluster
from ironserve.errors import InputError, Problem, did_you_mean
from ironserve.plan.plan import plan_group
from ironserve.serving import apikey


def endpoint_of(cluster: Cluster, group: str | None = None, with_key: bool = True) -> Target:
    """The target of ``group`` (the only group when None). Raises InputError naming the field.
    A group whose key a deploy has not generated on this machine yet gets no key."""
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
    where = plan.api_key
    api_key = None
    if with_key and where.enforced and (not where.generated or where.control_path.exists()):
        try:
            api_key = apikey.read_plan_key(where)
        except apikey.ApiKeyError as error:
            raise InputError(
                [Problem(chosen.head.name, "serving_api_key_file", str(error))]
            ) from error
    return Target(base_url=plan.endpoint.url, model=plan.context.served_name, api_key=api_key)


def read_key(host: str, path: Path) -> str:
    """``--api-key-file``: the operator's own key file, with the same 0600 check."""
    try:
        return apikey.read_key(path.expanduser())
    except apikey.ApiKeyError as error:
        raise InputError([Problem(host, "--api-key-file", str(error))]) from error
