"""Read a pyinfra inventory (file plus group_data) into plain host records, without connecting.

This is the one module that touches pyinfra's CLI internals (``pyinfra_cli.inventory``), so the
inventory is loaded exactly as ``pyinfra INVENTORY ...`` would load it.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironserve.errors import InputError, Problem, one_line


@dataclass(frozen=True)
class HostRecord:
    name: str
    groups: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)


def pyinfra_inventory(path: str | Path, cwd: str | Path | None = None) -> Any:
    """The inventory as pyinfra's own ``Inventory`` (hosts with their connectors, not connected):
    what ``deploy/transport.py`` opens a State over. Raises InputError when it does not load."""
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.state import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    inventory_path = Path(path)
    if not inventory_path.is_file():
        raise InputError([Problem(str(path), "inventory", "no such inventory file")])
    workdir = str(Path(cwd) if cwd else Path.cwd())
    state = State(Inventory.empty())  # type: ignore[no-untyped-call]
    try:
        with ctx_state.use(state), contextlib.redirect_stdout(io.StringIO()):
            return make_inventory(os.fspath(inventory_path), cwd=workdir)
    except Exception as error:  # what the operator's inventory or group_data file raised
        problem = Problem(str(path), "inventory", f"cannot be loaded: {one_line(error)}")
        raise InputError([problem]) from error


def load_inventory(path: str | Path, cwd: str | Path | None = None) -> list[HostRecord]:
    """Every host of the inventory with its merged data (host > groups > all)."""
    records = []
    for host in pyinfra_inventory(path, cwd):
        groups = tuple(g for g in host.groups if not g.startswith("@"))
        records.append(HostRecord(host.name, groups, dict(host.data.dict())))
    if not records:
        raise InputError([Problem(str(path), "inventory", "defines no hosts")])
    return records
