"""`ironserve monitoring render -i INVENTORY --out DIR`: the files roles/monitoring puts on the
Prometheus node (prometheus.yml, alerts.yml, the Grafana dashboard; the DCGM counters when a group
is NVIDIA), rendered from the inventory's Plans without connecting to any node. For a site that
runs its own Prometheus, or to review a change before deploying it. Exit 2: bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.config.inventory import HostRecord
from ironserve.config.loader import build_cluster
from ironserve.errors import InputError, Problem
from ironserve.plan.plan import plan_group

monitoring_app = typer.Typer(
    no_args_is_help=True, help="Monitoring: Prometheus scrape targets, alert rules, dashboard."
)


def _bad_input(problems: list[Problem]) -> NoReturn:
    for problem in problems:
        print(problem, file=sys.stderr)  # one line per problem: scripts read it
    raise typer.Exit(2)


def _server_choice(records: list[HostRecord]) -> tuple[str | None, list[Problem]]:
    """The site's ``monitoring_server`` (None: the default), or problems when hosts disagree."""
    first = records[0]
    chosen = first.data.get("monitoring_server")
    problems = [
        Problem(
            r.name,
            "monitoring_server",
            f"{r.data.get('monitoring_server')!r} differs from {first.name}'s {chosen!r}: "
            "one Prometheus node per site",
        )
        for r in records[1:]
        if r.data.get("monitoring_server") != chosen
    ]
    return chosen, problems


def render_site(records: list[HostRecord]) -> tuple[str, dict[str, str]]:
    """The Prometheus node and its files by name; raises InputError naming host and field."""
    # Here, not at the top: the package imports its pyinfra deploy, which no other
    # `ironserve` command should pay for at start-up.
    from ironserve.roles.monitoring import render as r
    from ironserve.roles.monitoring.defaults import MonitoringData

    plans = [plan_group(g) for g in build_cluster(records).groups]
    if not plans:
        raise InputError([Problem("inventory", "hosts", "no hosts: nothing to monitor")])
    chosen, problems = _server_choice(records)
    names = {record.name: record for record in records}
    if chosen is not None and chosen not in names:
        problems.append(Problem(records[0].name, "monitoring_server", f"{chosen!r} is not a host"))
    if problems:
        raise InputError(problems)
    server = chosen or next(n.node for n in plans[0].nodes if n.serves_api)
    # The server's own data, typed over the role's defaults, as the deploy reads it there.
    settings = MonitoringData.from_data(server, dict(names[server].data)).model_dump()
    texts = r.server_files(plans, settings)
    if any(ACCELERATORS[p.context.accelerator.id].vendor == "nvidia" for p in plans):
        texts["dcgm-counters.csv"] = r.dcgm_counters()
    return server, texts


@monitoring_app.command("render")
def render_cmd(
    inventory: Annotated[
        Path,
        typer.Option("-i", "--inventory", help="pyinfra inventory file (group_data beside it)"),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the files into")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Write what the monitoring role puts on the Prometheus node into `--out`: exit 0 written,
    2 bad input (one line per problem: host, field, what is wrong)."""
    from ironserve.config.inventory import load_inventory

    try:
        server, texts = render_site(load_inventory(str(inventory)))
    except InputError as error:
        _bad_input(error.problems)
    if out.exists() and not out.is_dir():
        _bad_input([Problem("cli", "--out", f"{out} exists and is not a folder")])
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name, text in texts.items():
        (out / name).write_text(text)
        written[name] = str(out / name)
    if as_json:
        print(json.dumps({"server": server, "files": written}, indent=2))
        return
    for path in written.values():
        print(path)
    print(f"(for the Prometheus node {server})")
