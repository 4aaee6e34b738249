"""`ironserve lab ...`: a real multi-node cluster on this machine (Docker), simulated hardware.

Exit codes: 0 ok, 1 the operation failed on the engine, 2 bad input or no lab/engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ironserve.lab.host import SetupResult

lab_app = typer.Typer(
    no_args_is_help=True,
    help="The lab: nodes as containers on the local Docker engine, reached over real SSH, "
    "with simulated GPUs/NPUs. `pyinfra inventories/lab.py ...` drives it.",
)
out = Console()
err = Console(stderr=True)


@contextmanager
def _guard(what: str) -> Iterator[None]:
    """LabError (bad input, no lab, no engine): exit 2; the engine or a tool failing: exit 1."""
    import subprocess

    import docker.errors

    from ironserve.lab.cluster import LabError

    try:
        yield
    except (LabError, ValueError) as error:
        err.print(f"lab: {error}", markup=False, highlight=False)
        raise typer.Exit(2) from error
    except (docker.errors.DockerException, subprocess.CalledProcessError, RuntimeError) as error:
        err.print(f"lab: {what} failed: {error}", markup=False, highlight=False)
        raise typer.Exit(1) from error


def _host_setup(tests: bool) -> SetupResult:
    """The one host-setup step (ironserve.lab.host): exit 2 where it cannot run here."""
    from ironserve.lab import host

    try:
        return host.setup(tests=tests, log=lambda m: err.print(f"lab setup: {m}", markup=False))
    except host.HostSetupError as error:
        err.print(f"lab setup: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from error


@lab_app.command()
def setup(
    tests: Annotated[
        bool, typer.Option("--tests", help="Also what `make test` needs (ruby)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Install the Debian packages the lab needs (when missing) and start a Docker engine when
    none answers (its own data root and pidfile; `lab stop-engine` stops it). Root on Debian;
    elsewhere it prints what to install and exits 2 before changing anything."""
    from dataclasses import asdict

    result = _host_setup(tests)
    if as_json:
        print(json.dumps(asdict(result)))
        return
    done = [f"installed {' '.join(result.installed)}"] if result.installed else []
    if result.engine == "started":
        done.append(f"started a Docker engine (pid {result.engine_pid})")
    out.print(f"lab setup: {'; '.join(done) if done else 'nothing to do'}")


@lab_app.command()
def doctor(
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, help="Lab size to check for")] = 3,
    light: Annotated[bool, typer.Option("--light", help="Light nodes (sshd only)")] = False,
    profile: Annotated[
        str, typer.Option(help="Lab profile (labgpu serves the real vLLM: make demo's)")
    ] = "labgpu",
    tests: Annotated[bool, typer.Option("--tests", help="Also what `make test` needs")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Each prerequisite of the lab: OK, missing (with the remedy) or a warning.
    Exit 0 when nothing is missing, 1 otherwise."""
    from ironserve.lab import host

    checks = host.doctor(nodes=nodes, light=light, tests=tests, profile=profile)
    doc = host.checks_json(checks)
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        table = Table(title="lab prerequisites")
        for column in ("check", "status", "observed", "remedy"):
            table.add_column(column)
        style = {"ok": "green", "missing": "red", "warn": "yellow"}
        for c in checks:
            table.add_row(c.name, f"[{style[c.status]}]{c.status.upper()}[/]", c.observed, c.remedy)
        out.print(table)
    if not doc["ok"]:
        raise typer.Exit(1)


@lab_app.command()
def up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, help="How many nodes")] = 3,
    profile: Annotated[
        str,
        typer.Option(help="Hardware profile: h100x8, a100-40gx8, ascend910bx8, va16, gpu2, labgpu"),
    ] = "h100x8",
    light: Annotated[
        bool, typer.Option("--light", help="sshd only (no systemd, no nested dockerd, no /data)")
    ] = False,
    dynamo: Annotated[
        bool | None,
        typer.Option(
            "--dynamo/--no-dynamo",
            help="Serve NVIDIA Dynamo: its images in the lab registry, inventories/lab_dynamo.py "
            "deploys it (default: $IRONSERVE_LAB_DYNAMO=1)",
        ),
    ] = None,
    real_vllm: Annotated[
        bool,
        typer.Option(
            "--real-vllm/--no-real-vllm",
            help="The real vLLM's image in the registry and its model on the hub (without: the "
            "stand-in engines only, up in seconds on a cold machine; set "
            "IRONSERVE_LAB_ENGINE_VERSION=0.11.0 to deploy)",
        ),
    ] = True,
) -> None:
    """Build the images (once, cached), then start the network, the apt repository and the nodes;
    wait until every node answers on SSH."""
    from ironserve.lab.cluster import up as lab_up
    from ironserve.lab.serving import lab_inventory
    from ironserve.lab.state import project_root

    started = time.monotonic()
    _host_setup(tests=False)
    with _guard("lab up"):
        state = lab_up(
            nodes=nodes, profile=profile, light=light, dynamo=dynamo, real_vllm=real_vllm
        )
    out.print(
        f"lab up: {len(state.nodes)} x {state.profile}{' (light)' if light else ''}"
        f"{' serving Dynamo' if state.dynamo else ''}"
        f"{'' if state.real_vllm else ' without the real vLLM'} in "
        f"{time.monotonic() - started:.1f}s; network {state.network_name} {state.subnet}"
    )
    inventory = lab_inventory().relative_to(project_root())
    out.print(f"next: .venv/bin/pyinfra -y {inventory} exec -- hostname")


@lab_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    memory: Annotated[bool, typer.Option("--memory", help="Measure each node's memory")] = False,
) -> None:
    """The lab's nodes (name, address, SSH port, profile, container state)."""
    from ironserve.lab.cluster import status as lab_status

    with _guard("lab status"):
        doc = lab_status(memory=memory)
    if doc is None:
        if as_json:
            print(json.dumps({"up": False, "nodes": []}))
            return
        err.print("lab: no lab is up")
        raise typer.Exit(1)
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
    if doc.get("endpoint"):
        out.print(f"endpoint: {doc['endpoint']} (API key in {doc['api_key_file']})")


@lab_app.command()
def down(
    everything: Annotated[
        bool, typer.Option("--all", help="Every object labelled ironserve.lab=1, any lab")
    ] = False,
    images: Annotated[bool, typer.Option("--images", help="Also remove the lab's images")] = False,
) -> None:
    """Remove the lab's containers, network, volumes and /data disks (images stay: a cache)."""
    from ironserve.lab.cluster import connect
    from ironserve.lab.cluster import down as lab_down
    from ironserve.lab.images import remove_images

    with _guard("lab down"):
        removed = lab_down(everything=everything)
        if images:
            removed += [f"image {tag}" for tag in remove_images(connect())]
    out.print(f"lab down: removed {len(removed)} object(s)" if removed else "lab down: no lab")


@lab_app.command("stop-engine")
def stop_engine() -> None:
    """Stop the Docker engine `lab setup` started, and no other; it stays up while containers
    still run on it (another lab's, or anything else's)."""
    from ironserve.lab import host

    out.print(f"lab stop-engine: {host.stop_engine()}", markup=False)


@lab_app.command()
def fault(
    node: Annotated[str, typer.Argument(help="Node name (see `lab status`)")],
    kind: Annotated[str, typer.Argument(help="gpu-missing, xid-79, disk-full, node-down, ...")],
    target: Annotated[
        int | None, typer.Option(help="Device index for per-device faults (default: the last)")
    ] = None,
) -> None:
    """Inject a fault: simulated hardware (run on the node), a full /data, or the node down."""
    from ironserve.lab.cluster import fault as lab_fault

    with _guard("lab fault"):
        out.print(lab_fault(node, kind, target), markup=False)


@lab_app.command()
def heal(node: Annotated[str, typer.Argument(help="Node name")]) -> None:
    """Undo every fault of a node (start it again if it was down)."""
    from ironserve.lab.cluster import heal as lab_heal

    with _guard("lab heal"):
        out.print(lab_heal(node), markup=False)


@lab_app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask")] = "Say hello.",
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens")] = 16,
) -> None:
    """One chat completion from the lab's endpoint (after deploys/serve.py), with its API key;
    prints the endpoint, the model and the answer."""
    from ironserve.lab import serving
    from ironserve.lab.state import lab_dir

    try:
        url, key_file, model, text = serving.chat(lab_dir(), prompt, max_tokens)
    except serving.ChatError as error:
        err.print(f"lab chat: {error}", markup=False, highlight=False)
        raise typer.Exit(1) from error
    out.print(f"endpoint: {url}  (API key: {key_file})", markup=False)
    out.print(f"{model}: {text}", markup=False, highlight=False)


from ironserve.lab.hub.cli import hub_app  # noqa: E402  (the lab model hub's sub-commands)

lab_app.add_typer(hub_app, name="hub")
