"""`ironserve weights pull|verify -i INVENTORY`. Exit codes: 0 done / all complete, 1 a node is
incomplete or the pull failed, 2 bad input (nothing contacted)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from ironserve.config.schema import Cluster, ServingGroup
from ironserve.errors import InputError
from ironserve.weights import remote
from ironserve.weights.metadata import RepoMeta, WeightsError, hub_metadata, read_token
from ironserve.weights.verify import NodeReport, classify

weights_app = typer.Typer(
    no_args_is_help=True, help="Model weights: one download, verified, fanned out to every node."
)
err = Console(stderr=True)
Inventory = Annotated[
    Path, typer.Option("-i", "--inventory", help="pyinfra inventory file (group_data beside it)")
]


def _bad_input(error: InputError) -> NoReturn:
    for problem in error.problems:
        print(problem, file=sys.stderr)
    raise typer.Exit(2)


def _load(inventory: Path) -> tuple[Cluster, dict[str, dict[str, Any]]]:
    from ironserve.config import load_cluster
    from ironserve.config.inventory import load_inventory

    try:
        cluster = load_cluster(str(inventory))
        records = {r.name: dict(r.data) for r in load_inventory(str(inventory))}
    except InputError as error:
        _bad_input(error)
    return cluster, records


def _dest(group: ServingGroup) -> str:
    from ironserve.plan.plan import plan_group

    return plan_group(group).context.weights_path


def _meta(group: ServingGroup) -> RepoMeta:
    try:
        return hub_metadata(
            group.hub.kind,
            group.hub.endpoint,
            group.model.id,
            group.model.revision,
            read_token(group.hub.token_file),
        )
    except WeightsError as error:
        print(f"group {group.name}: {error}", file=sys.stderr)  # one line: scripts read it
        raise typer.Exit(1) from error


def _project_root(inventory: Path) -> Path:
    for root in (inventory.resolve().parent.parent, Path.cwd()):
        if (root / "deploys" / "weights.py").is_file():
            return root
    err.print("deploys/weights.py not found beside the inventory's folder or here")
    raise typer.Exit(2)


@weights_app.command("pull")
def pull(
    inventory: Inventory,
    dry: Annotated[bool, typer.Option("--dry", help="Show what would change")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="pyinfra's output")] = False,
) -> None:
    """Run deploys/weights.py with a progress bar of the bytes held across the cluster."""
    cluster, records = _load(inventory)
    jobs = [(g, _dest(g), _meta(g)) for g in cluster.groups]
    total = sum(meta.total_bytes * len(g.nodes) for g, _, meta in jobs)
    root = _project_root(inventory)
    argv = [str(Path(sys.executable).parent / "pyinfra"), "-y", str(inventory.resolve())]
    argv += ["--dry"] if dry else []
    argv += [str(root / "deploys" / "weights.py")]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT, text=True)
        if not dry:
            _progress(process, jobs, records, total)
        rc = process.wait()
        log.seek(0)
        output = log.read()
    if verbose:
        print(output)
    for line in output.splitlines():
        keys = ("verified", "refused", "disk:", "gated", "Grand total", "Error", "Remedy")
        if any(k in line for k in keys) or line.strip().startswith("weights:"):
            print(line.strip())
    raise typer.Exit(0 if rc == 0 else 1)


def _progress(
    process: subprocess.Popen[str],
    jobs: list[tuple[ServingGroup, str, RepoMeta]],
    records: dict[str, dict[str, Any]],
    total: int,
) -> None:
    targets = [(n.name, dest, meta.total_bytes) for g, dest, meta in jobs for n in g.nodes]

    def held(target: tuple[str, str, int]) -> int:
        name, dest, size = target
        try:
            return min(size, remote.held_bytes(name, records.get(name, {}), dest))
        except (subprocess.SubprocessError, OSError, ValueError):
            return 0

    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn())
    with (
        Progress(*columns, TransferSpeedColumn(), console=err, transient=False) as bar,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        task = bar.add_task(f"weights on {len(targets)} node(s)", total=total)
        stop = threading.Event()
        while not stop.is_set():
            bar.update(task, completed=sum(pool.map(held, targets)))
            if process.poll() is not None:
                stop.set()
            else:
                time.sleep(1.0)


@weights_app.command("verify")
def verify(
    inventory: Inventory,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Re-hash every file on every node against the hub's sha256 (git sha1 for small files):
    exit 0 when every node is complete, 1 otherwise, 2 on bad input."""
    cluster, records = _load(inventory)
    reports: list[NodeReport] = []
    for group in cluster.groups:
        dest, meta = _dest(group), _meta(group)
        paths = [f.path for f in meta.files]

        def one(
            name: str, dest: str = dest, meta: RepoMeta = meta, paths: list[str] = paths
        ) -> NodeReport:
            try:
                found = remote.hashes(name, records.get(name, {}), dest, paths)
            except (RuntimeError, subprocess.SubprocessError, ValueError) as error:
                return NodeReport(name, dest, error=str(error))
            return classify(name, dest, meta, found)

        with ThreadPoolExecutor(max_workers=8) as pool:
            reports += list(pool.map(one, [n.name for n in group.nodes]))
    ok = all(r.ok for r in reports)
    if as_json:
        print(json.dumps({"complete": ok, "nodes": [r.as_dict() for r in reports]}, indent=2))
    else:
        for r in reports:
            if r.ok:
                print(f"{r.node}: complete ({len(r.complete)} files at {r.dest})")
            else:
                detail = r.error or f"missing {r.missing or '-'}, corrupt {r.corrupt or '-'}"
                print(f"{r.node}: INCOMPLETE: {detail}")
    raise typer.Exit(0 if ok else 1)


__all__ = ["weights_app"]
