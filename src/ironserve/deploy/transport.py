"""The one way ironserve reaches nodes from the control machine: pyinfra's API.

The inventory is loaded as ``pyinfra`` loads it (``config/inventory.py``), into a pyinfra
``State`` whose connectors (SSH with the inventory's ``ssh_*`` keys and known_hosts, ``@local``,
``@docker``, ``@fake`` in tests) carry every command. Health, ``ironserve weights`` and the
engine role's waits run commands and facts through here, each with a timeout; a full deploy
(``ironserve weights pull``) runs through pyinfra's API too (:func:`run_deploy`), and its outcome
is read from pyinfra's own results (failed hosts, per-operation success), never from printed
text.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT_S = 10  # pyinfra's CONNECT_TIMEOUT: an unreachable node fails fast


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # unreachable, timed out, the connector's exception


def open_state(inventory_path: str | Path, connect_timeout: int = CONNECT_TIMEOUT_S) -> Any:
    """A pyinfra State over the inventory; no host is connected yet."""
    from pyinfra.api.config import Config
    from pyinfra.api.state import State

    from ironserve.config.inventory import pyinfra_inventory

    inventory = pyinfra_inventory(inventory_path)
    return State(inventory, Config(CONNECT_TIMEOUT=connect_timeout))  # type: ignore[no-untyped-call]


@contextmanager
def on(state: Any, host: Any, connect: bool = True) -> Iterator[bool]:
    """pyinfra's context for ``host``, connected (``connect`` False: only if it already is);
    yields whether the connection stands. pyinfra's current State is process-wide (its host is
    per greenlet): greenlets that run side by side share one State."""
    from pyinfra.context import ctx_host, ctx_state

    with ctx_state.use(state), ctx_host.use(host):
        if connect and not host.connected:
            host.connect(show_errors=False)
        yield bool(host.connected)


def run(
    state: Any,
    host: Any,
    command: str,
    *,
    timeout: float,
    stdin: str | None = None,
    connect: bool = True,
) -> CommandResult:
    """``command`` on ``host`` through its connector, bounded by ``timeout`` seconds
    (``connect`` False: on a host a deploy of this State has connected, else nothing)."""
    from pyinfra.api.command import StringCommand

    with on(state, host, connect) as connected:
        if not connected:
            return CommandResult(False, error=f"{host.name}: not connected")
        try:
            ok, output = host.run_shell_command(
                StringCommand(command), _timeout=int(timeout), _stdin=stdin
            )
        except Exception as error:  # a timeout or a dropped connection: the caller says UNKNOWN
            return CommandResult(False, error=f"{host.name}: {error or type(error).__name__}")
    return CommandResult(bool(ok), str(output.stdout), str(output.stderr))


def fact(state: Any, host: Any, cls: type[Any], *, timeout: float, **kwargs: Any) -> Any:
    """``host.get_fact(cls, **kwargs)`` with a timeout; raises ConnectionError when the host
    cannot be reached (the fact's own errors propagate)."""
    with on(state, host) as connected:
        if not connected:
            raise ConnectionError(f"{host.name}: unreachable")
        return host.get_fact(cls, _timeout=int(timeout), **kwargs)


def read_file(state: Any, host: Any, path: str, *, timeout: float = 20) -> str | None:
    """A small file on the node (root-only ones through ``sudo -n``); None when unreadable."""
    q = shlex.quote(path)
    result = run(state, host, f"cat {q} 2>/dev/null || sudo -n cat {q}", timeout=timeout)
    return result.stdout if result.ok else None


@dataclass
class DeployResult:
    """pyinfra's outcome of a deploy run: hosts that failed, and per operation the hosts where
    it changed something, did nothing, or failed (``State.ops`` / ``op_meta``)."""

    failed_hosts: list[str] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the deploy stopped before running (a DeployError, bad input)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed_hosts


def run_deploy(
    inventory_path: str | Path,
    deploy_file: str | Path,
    *,
    dry: bool,
    state: Any = None,
    cwd: str | Path | None = None,
) -> DeployResult:
    """Run ``deploy_file`` over the inventory through pyinfra's API, as ``pyinfra -y INVENTORY
    DEPLOY`` would (``--dry``: operations are prepared, nothing runs). ``cwd`` is pyinfra's
    working directory (relative paths of the deploy's operations; importable, as pyinfra
    makes it): by default the project of a ``deploys/`` file (the file's parent's parent).
    ``state``: a fresh one from :func:`open_state`, shared with greenlets that watch the run
    (``run(..., connect=False)``)."""
    import pyinfra
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_state
    from pyinfra_cli.util import load_deploy_file

    deploy = Path(deploy_file).resolve()
    root = str(Path(cwd).resolve() if cwd is not None else deploy.parent.parent)
    if root not in sys.path:  # pyinfra puts its cwd there
        sys.path.append(root)
    state = state if state is not None else open_state(inventory_path)
    state.cwd = root
    # As `pyinfra -y`: operations are not run twice to detect changes first, except to show them.
    state.check_for_changes = dry
    # pyinfra's own spinner stays off: the caller shows progress (pyinfra's CLI does the same
    # for --json runs).
    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    result = DeployResult()
    # CLI mode: operations ordered by their place in the deploy's code (the roles' waves rely on
    # it), as `pyinfra INVENTORY DEPLOY` orders them.
    was_cli, pyinfra.is_cli = pyinfra.is_cli, True
    with ctx_state.use(state):
        try:
            state.set_stage(StateStage.Connect)
            connect_all(state)
            state.set_stage(StateStage.Prepare)
            load_deploy_file(state, os.fspath(deploy))
            if not dry:
                state.set_stage(StateStage.Execute)
                run_ops(state)
        except Exception as error:  # a DeployError, no hosts left, a role's own bug: reported
            result.error = _describe(error)
        finally:
            state.set_stage(StateStage.Disconnect)
            result.failed_hosts = sorted(h.name for h in state.failed_hosts)
            result.operations = _operations(state, ran=not dry and result.error is None)
            disconnect_all(state)
            pyinfra.is_cli = was_cli
    return result


def _describe(error: Exception) -> str:
    """The error as one line; an exception raised by the deploy's own code comes wrapped by
    pyinfra's loader and is named with its file (``errors.one_line``)."""
    from ironserve.errors import one_line

    return one_line(error)


def _operations(state: Any, ran: bool) -> list[dict[str, Any]]:
    """Per operation (in pyinfra's order): its names and the hosts it changed, left alone or
    failed on (``ran`` False: the hosts it would touch, as ``planned``)."""
    out = []
    for op_hash in state.get_op_order():
        hosts = [h for h in state.inventory.iter_activated_hosts() if op_hash in state.ops[h]]
        entry: dict[str, Any] = {"names": sorted(state.op_meta[op_hash].names)}
        if not ran:
            entry["planned"] = sorted(h.name for h in hosts)
        else:
            outcome: dict[str, list[str]] = {"changed": [], "no_change": [], "failed": []}
            for host in hosts:
                meta = state.ops[host][op_hash].operation_meta
                if not meta.did_succeed(_raise_if_not_complete=False):
                    outcome["failed"].append(host.name)
                elif meta.did_change():
                    outcome["changed"].append(host.name)
                else:
                    outcome["no_change"].append(host.name)
            entry |= {key: sorted(names) for key, names in outcome.items()}
        out.append(entry)
    return out
