"""Where a simulated node keeps its hardware description and its mutable state.

Runs on lab nodes with the system python3 (stdlib only, no ironserve). Every path is under
``IRONSERVE_SIM_ROOT`` (default ``/``) so tests can run the tools against a temporary tree.

- ``/etc/ironserve-sim/hardware.json``: written once at node creation (hardware.node_hardware).
- ``/var/lib/ironserve-sim/state.json``: what changes: installed drivers, persistence mode,
  hccn_tool settings, active faults, kernel-log lines.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

JSON = dict[str, Any]


def root() -> str:
    return os.environ.get("IRONSERVE_SIM_ROOT", "/")


def path(*parts: str) -> str:
    """An absolute node path re-rooted under IRONSERVE_SIM_ROOT."""
    return os.path.join(root(), *(p.lstrip("/") for p in parts))


HARDWARE_FILE = "/etc/ironserve-sim/hardware.json"
STATE_FILE = "/var/lib/ironserve-sim/state.json"


def default_state() -> JSON:
    return {
        "nvidia": {"driver": None, "loaded": False, "persistence": []},
        "ascend": {"driver": None, "firmware": None},
        "vastai": {"driver": None, "devices_present": False},
        "hccn": {},
        "faults": [],
        "kernlog": [],
        "clock": 0.0,
    }


def load_hardware() -> JSON:
    with open(path(HARDWARE_FILE), encoding="utf-8") as f:
        data: JSON = json.load(f)
    return data


def load_state() -> JSON:
    state = default_state()
    try:
        with open(path(STATE_FILE), encoding="utf-8") as f:
            state.update(json.load(f))
    except FileNotFoundError:
        pass
    return state


def save_state(state: JSON) -> None:
    write_file(STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def write_file(node_path: str, text: str, mode: int = 0o644) -> None:
    """Atomic write (rename), so a tool killed mid-write never leaves half a file."""
    target = path(node_path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, target)


def faults(state: JSON, kind: str) -> list[JSON]:
    return [f for f in state.get("faults", []) if f.get("kind") == kind]


def fault_targets(state: JSON, kind: str) -> set[int]:
    return {int(f.get("target", 0)) for f in faults(state, kind)}
