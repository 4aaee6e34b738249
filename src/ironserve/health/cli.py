"""``ironserve health``: run the checks, print a table or one JSON object, exit with the verdict."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ironserve.config.inventory import load_inventory
from ironserve.config.loader import build_cluster
from ironserve.errors import InputError
from ironserve.health.model import RUNBOOKS, TIERS, Status, exit_code, worst
from ironserve.plan.plan import plan_cluster

_COLOURS = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.FAIL: "red",
    Status.UNKNOWN: "magenta",
}


def _bad_input(error: InputError) -> None:
    for problem in error.problems:
        print(problem, file=sys.stderr)  # one line per problem, never wrapped: scripts read it


def health(
    inventory: Annotated[str, typer.Option("-i", "--inventory", help="pyinfra inventory")],
    tier: Annotated[
        str, typer.Option(help="preflight, node, cluster, serving or all (node+cluster+serving)")
    ] = "all",
    node: Annotated[str | None, typer.Option(help="only this node")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Probe every node over SSH; exit 0 OK, 1 WARN, 2 FAIL, 3 UNKNOWN (worst wins)."""
    err = Console(stderr=True)
    if tier not in TIERS:
        err.print(f"--tier: {tier!r} is not one of {', '.join(TIERS)}")
        raise typer.Exit(2)
    try:  # validate (and plan) before any SSH connection, whatever the tier
        records = load_inventory(inventory)
        plan_cluster(build_cluster(records))
    except InputError as error:
        _bad_input(error)
        raise typer.Exit(2) from error
    if node is not None and node not in {r.name for r in records}:
        err.print(f"{node}: --node: not in the inventory")
        raise typer.Exit(2)
    from ironserve.health import tiers  # SSH and pyinfra: only once the input is valid

    try:  # cluster and serving judge against the Plan: an inventory that does not plan stops here
        nodes, results = tiers.run(inventory, records, tier, node)
    except InputError as error:
        _bad_input(error)
        raise typer.Exit(2) from error
    except tiers.TierMissing as error:
        err.print(str(error))
        raise typer.Exit(2) from error
    code = exit_code(results)
    summary = {s.value: sum(r.status is s for r in results) for s in Status}
    if as_json:
        print(
            json.dumps(
                {
                    "nodes": nodes,
                    "results": [r.to_json() for r in results],
                    "summary": summary,
                    "status": worst([r.status for r in results]).value,
                    "exit_code": code,
                }
            )
        )
    else:
        table = Table("node", "check", "status", "observed", "expected", "action", "runbook")
        for r in results:
            colour = _COLOURS[r.status]
            table.add_row(
                r.node,
                r.check,
                f"[{colour}]{r.status.value}[/]",
                r.observed,
                r.expected,
                r.action,
                r.runbook,
            )
        Console().print(table)
        Console().print(f"summary: {summary}  exit {code}")
    raise typer.Exit(code)


__all__ = ["RUNBOOKS", "health"]
