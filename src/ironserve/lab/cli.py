"""`ironserve lab ...`: a real multi-node cluster on this machine (Docker), simulated hardware.

Exit codes: 0 ok, 1 the operation failed on the engine, 2 bad input or no lab/engine.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

lab_app = typer.Typer(
    no_args_is_help=True,
    help="The lab: nodes as containers on the local Docker engine, reached over real SSH, "
    "with simulated GPUs/NPUs. `pyinfra inventories/lab.py ...` drives it.",
)
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"lab: {message}", markup=False, highlight=False)
    return typer.Exit(code)


@lab_app.command()
def up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, help="How many nodes")] = 3,
    profile: Annotated[
        str, typer.Option(help="Hardware profile: h100x8, a100-40gx8, ascend910bx8, va16, gpu2")
    ] = "h100x8",
    light: Annotated[
        bool, typer.Option("--light", help="sshd only (no nested dockerd, no /data disk)")
    ] = False,
) -> None:
    """Build the images (once, cached), then start the network, the apt repository and the nodes;
    wait until every node answers on SSH."""
    import subprocess

    import docker.errors

    from ironserve.lab.cluster import LabError
    from ironserve.lab.cluster import up as lab_up

    started = time.monotonic()
    try:
        state = lab_up(nodes=nodes, profile=profile, light=light)
    except (LabError, ValueError) as error:
        raise _fail(str(error)) from error
    except (docker.errors.DockerException, subprocess.CalledProcessError, RuntimeError) as error:
        raise _fail(f"lab up failed: {error}", 1) from error
    elapsed = time.monotonic() - started
    out.print(
        f"lab up: {len(state.nodes)} x {state.profile}{' (light)' if light else ''} in "
        f"{elapsed:.1f}s; network {state.network_name} {state.subnet}"
    )
    out.print("next: .venv/bin/pyinfra -y inventories/lab.py exec -- hostname")


@lab_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    memory: Annotated[bool, typer.Option("--memory", help="Measure each node's memory")] = False,
) -> None:
    """The lab's nodes (name, address, SSH port, profile, container state)."""
    from ironserve.lab.cluster import LabError
    from ironserve.lab.cluster import status as lab_status

    try:
        doc = lab_status(memory=memory)
    except LabError as error:
        raise _fail(str(error)) from error
    if doc is None:
        if as_json:
            print(json.dumps({"nodes": [], "up": False}))
            return
        raise _fail("no lab is up", 1)
    if as_json:
        print(json.dumps({"up": True, **doc}, indent=2))
        return
    table = Table(title=f"lab {doc['lab_id']}: {doc['profile']} on {doc['network']['subnet']}")
    for column in ("name", "address", "ssh port", "accelerator", "state", "faults"):
        table.add_column(column)
    if memory:
        table.add_column("MiB", justify="right")
    for n in doc["nodes"]:
        row = [
            n["name"],
            n["address"],
            str(n["ssh_port"]),
            f"{n['accelerator_count']} x {n['accelerator']}",
            n["state"] + (" (light)" if n["light"] else ""),
            ",".join(n["faults"]) or "-",
        ]
        if memory:
            row.append(str(n.get("memory_mib", "-")))
        table.add_row(*row)
    out.print(table)
    if doc["apt_repository"]:
        out.print(f"apt repository: {doc['apt_repository']}")


@lab_app.command()
def down(
    everything: Annotated[
        bool, typer.Option("--all", help="Every object labelled ironserve.lab=1, any lab")
    ] = False,
    images: Annotated[bool, typer.Option("--images", help="Also remove the lab's images")] = False,
) -> None:
    """Remove the lab's containers, network and volumes (images stay: they are a cache)."""
    from ironserve.lab.cluster import LabError, connect
    from ironserve.lab.cluster import down as lab_down
    from ironserve.lab.images import remove_images

    try:
        removed = lab_down(everything=everything)
        if images:
            removed += [f"image {tag}" for tag in remove_images(connect())]
    except LabError as error:
        raise _fail(str(error)) from error
    out.print(f"lab down: removed {len(removed)} object(s)" if removed else "lab down: no lab")


@lab_app.command()
def fault(
    node: Annotated[str, typer.Argument(help="Node name (see `lab status`)")],
    kind: Annotated[str, typer.Argument(help="gpu-missing, xid-79, disk-full, node-down, ...")],
    target: Annotated[
        int | None, typer.Option(help="Device index for per-device faults (default: last)")
    ] = None,
) -> None:
    """Inject a fault: simulated hardware (run on the node), a full /data, or the node down."""
    from ironserve.lab.cluster import LabError
    from ironserve.lab.cluster import fault as lab_fault

    try:
        out.print(lab_fault(node, kind, target), markup=False)
    except LabError as error:
        raise _fail(str(error)) from error


@lab_app.command()
def heal(node: Annotated[str, typer.Argument(help="Node name")]) -> None:
    """Undo every fault of a node (start it again if it was down)."""
    from ironserve.lab.cluster import LabError
    from ironserve.lab.cluster import heal as lab_heal

    try:
        out.print(lab_heal(node), markup=False)
    except LabError as error:
        raise _fail(str(error)) from error
