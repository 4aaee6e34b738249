"""`ironserve weights pull|verify -i INVENTORY`. Exit codes: 0 done / all complete, 1 a node is
incomplete, the pull failed or the hub is unreachable, 2 bad input: the inventory, the hub
endpoint or token file, or an unsafe file name in the hub's listing (nothing contacted)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from ironserve.config.schema import Cluster, ServingGroup
from ironserve.deploy import transport
from ironserve.errors import InputError
from ironserve.weights import remote
from ironserve.weights.metadata import (
    RepoMeta,
    WeightsError,
    WeightsInputError,
    hub_metadata,
    read_token,
)
from ironserve.weights.verify import NodeReport, classify

weights_app = typer.Typer(
    no_args_is_help=True, help="Model weights: one download, verified, fanned out to every node."
)
err = Console(stderr=True)
Inventory = Annotated[
    Path, typer.Option("-i", "--inventory", help="pyinfra inventory file (group_data beside it)")
]
POLL_S = 1.0


def _bad_input(error: InputError) -> NoReturn:
    for problem in error.problems:
        print(problem, file=sys.stderr)
    raise typer.Exit(2)


def _load(inventory: Path) -> Cluster:
    from ironserve.config import load_cluster

    try:
        return load_cluster(str(inventory))
    except InputError as error:
        _bad_input(error)


def _dest(group: ServingGroup) -> str:
    from ironserve.plan.plan import plan_group

    try:  # what the engine version cannot launch is bad input (exit 2)
        return plan_group(group).context.weights_path
    except InputError as error:
        _bad_input(error)


def _meta(group: ServingGroup) -> RepoMeta:
    """The group's hub listing, names checked, before any node is contacted: exit 2 for bad
    input (endpoint, token file, an unsafe name in the listing), 1 for an unreachable hub."""
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
        raise typer.Exit(2 if isinstance(error, WeightsInputError) else 1) from None


def _packaged_deploy() -> AbstractContextManager[Path]:
    """The package's weights deploy file (ironserve/deploys/weights.py) as a path, wherever
    ironserve is installed: no checkout needed."""
    return resources.as_file(resources.files("ironserve").joinpath("deploys/weights.py"))


class _DeployMessages(logging.Handler):
    """Prints what the deploy's roles log (``from pyinfra import logger``: the weights verified
    on a node, a refusal) and pyinfra's warnings and errors; ``verbose``: all of pyinfra's."""

    def __init__(self, verbose: bool) -> None:
        super().__init__(logging.DEBUG if verbose else logging.INFO)
        import pyinfra

        self.verbose = verbose
        self.pyinfra_dir = str(Path(pyinfra.__file__).parent)

    def emit(self, record: logging.LogRecord) -> None:
        ours = not record.pathname.startswith(self.pyinfra_dir)
        if self.verbose or ours or record.levelno >= logging.WARNING:
            print(record.getMessage(), flush=True)


@contextmanager
def _messages(verbose: bool) -> Iterator[None]:
    logger = logging.getLogger("pyinfra")
    handler, level = _DeployMessages(verbose), logger.level
    logger.addHandler(handler)
    logger.setLevel(handler.level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def summary(result: transport.DeployResult) -> str:
    """One line from pyinfra's results: operation x host counts (``changed`` 0: nothing to do)."""
    if result.operations and "planned" in result.operations[0]:
        planned = sum(len(op["planned"]) for op in result.operations)
        return f"weights: dry run, {planned} operation(s) planned"
    counts = {
        key: sum(len(op.get(key, [])) for op in result.operations)
        for key in ("changed", "no_change", "failed")
    }
    line = (
        f"weights: {counts['changed']} changed, {counts['no_change']} unchanged, "
        f"{counts['failed']} failed (operations x hosts)"
    )
    if result.failed_hosts:
        line += f"; failed hosts: {', '.join(result.failed_hosts)}"
    return line


@weights_app.command("pull")
def pull(
    inventory: Inventory,
    dry: Annotated[bool, typer.Option("--dry", help="Show what would change")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="pyinfra's output")] = False,
) -> None:
    """Run the packaged weights deploy (pyinfra's API; this folder is pyinfra's working
    directory) with a progress bar of the bytes held across the cluster."""
    cluster = _load(inventory)
    jobs = [(g, _dest(g), _meta(g)) for g in cluster.groups]
    total = sum(meta.total_bytes * len(g.nodes) for g, _, meta in jobs)
    targets = [(n.name, dest, meta.total_bytes) for g, dest, meta in jobs for n in g.nodes]
    with _packaged_deploy() as deploy, _messages(verbose):
        if dry:
            result = transport.run_deploy(inventory, deploy, dry=True, cwd=Path.cwd())
        else:
            result = _with_progress(inventory, deploy, targets, total)
    if result.error:
        print(f"weights: {result.error}", file=sys.stderr)
    print(summary(result))
    raise typer.Exit(0 if result.ok else 1)


def _with_progress(
    inventory: Path, deploy: Path, targets: list[tuple[str, str, int]], total: int
) -> transport.DeployResult:
    """The deploy in this greenlet, the bytes on every node polled in another, over the
    deploy's own State and connections (pyinfra's current State is process-wide)."""
    import gevent  # type: ignore[import-untyped]
    import gevent.event  # type: ignore[import-untyped]

    stop = gevent.event.Event()
    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn())
    with Progress(*columns, TransferSpeedColumn(), console=err, transient=False) as bar:
        task = bar.add_task(f"weights on {len(targets)} node(s)", total=total)

        state = transport.open_state(inventory)

        def poll() -> None:
            def held(target: tuple[str, str, int]) -> int:
                name, dest, size = target
                try:
                    host = state.inventory.get_host(name)
                    return min(size, remote.held_bytes(state, host, dest))
                except (ValueError, IndexError):
                    return 0

            while not stop.is_set():
                jobs = [gevent.spawn(held, t) for t in targets]
                gevent.joinall(jobs)
                bar.update(task, completed=sum(j.value or 0 for j in jobs))
                stop.wait(POLL_S)

        poller = gevent.spawn(poll)
        try:
            return transport.run_deploy(inventory, deploy, dry=False, state=state, cwd=Path.cwd())
        finally:
            stop.set()
            poller.join(timeout=10)


@weights_app.command("verify")
def verify(
    inventory: Inventory,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Re-hash every file on every node against the hub's sha256 (git sha1 for small files):
    exit 0 when every node is complete, 1 otherwise, 2 on bad input."""
    import gevent

    cluster = _load(inventory)
    listings = [(g, _dest(g), _meta(g)) for g in cluster.groups]  # before any node
    state = transport.open_state(inventory)
    reports: list[NodeReport] = []
    for group, dest, meta in listings:
        paths = [f.path for f in meta.files]

        def one(
            name: str, dest: str = dest, meta: RepoMeta = meta, paths: list[str] = paths
        ) -> NodeReport:
            try:
                host = state.inventory.get_host(name)
                found = remote.hashes(state, host, dest, paths, meta.total_bytes)
            except (RuntimeError, ValueError) as error:
                return NodeReport(name, dest, error=str(error))
            return classify(name, dest, meta, found)

        jobs = [gevent.spawn(one, n.name) for n in group.nodes]
        gevent.joinall(jobs)
        reports += [
            job.value if job.successful() else NodeReport(name, dest, error=str(job.exception))
            for name, job in zip([n.name for n in group.nodes], jobs, strict=True)
        ]
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
