"""Hardware faults of a simulated node, as pure functions on the state dict.

Installed on nodes as ``/usr/sbin/ironserve-sim-fault`` (``apply KIND [--target N]``, ``heal``,
``list``); the lab's ``ironserve lab fault`` runs it over SSH, tests call apply()/heal() directly.
A fault only records *what is broken*; each tool decides what that changes in its output, the
way the real tool would see the broken hardware. Kernel-log lines are stamped with the node's
uptime at injection (``at``) so kernlog.py can print them in order.

``disk-full`` and ``node-down`` are the lab's own faults (a filled volume, a stopped container),
not hardware, so they are not here.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import state as st

JSON = st.JSON

# kind -> what the target index counts (None: the fault is node-wide)
KINDS: dict[str, str | None] = {
    "gpu-missing": "gpu",
    "xid-79": "gpu",
    "ecc-uncorrectable": "gpu",
    "row-remap-pending": "gpu",
    "fabricmanager-down": None,
    "ib-port-down": "hca",
    "npu-alarm": "npu",
    "npu-link-down": "npu",
    "npu-tls-mismatch": None,
}


def apply(kind: str, state: JSON, target: int | None = None, at: float = 0.0) -> JSON:
    """A copy of `state` with fault `kind` active (target -1 = the last device)."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(sorted(KINDS))}")
    new = copy.deepcopy(state)
    entry: JSON = {"kind": kind, "at": at}
    if KINDS[kind] is not None:
        entry["target"] = -1 if target is None else target
    new["faults"] = [
        f
        for f in new.get("faults", [])
        if (f["kind"], f.get("target")) != (kind, entry.get("target"))
    ] + [entry]
    if kind == "npu-tls-mismatch":
        # A configuration fault: the switch is really on, so `hccn_tool -tls -s enable 0` fixes it.
        for dev in range(8):
            new.setdefault("hccn", {}).setdefault(str(dev), {})["tls"] = 1
    return new


def heal(state: JSON) -> JSON:
    """A copy of `state` with every fault repaired (and the node rebooted: kernel log cleared)."""
    new = copy.deepcopy(state)
    if any(f["kind"] == "npu-tls-mismatch" for f in new.get("faults", [])):
        for dev in new.get("hccn", {}).values():
            dev["tls"] = 0
    new["faults"] = []
    return new


def resolve(target: int, count: int) -> int:
    """Device index a stored target means on a node with `count` devices (-1: the last)."""
    return target % count if count else 0


def targets(state: JSON, kind: str, count: int) -> set[int]:
    return {resolve(t, count) for t in st.fault_targets(state, kind)}


def uptime() -> float:
    try:
        with open("/proc/uptime", encoding="ascii") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ironserve-sim-fault")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_apply = sub.add_parser("apply")
    p_apply.add_argument("kind", choices=sorted(KINDS))
    p_apply.add_argument("--target", type=int, default=None)
    sub.add_parser("heal")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    state = st.load_state()
    if args.cmd in ("apply", "heal"):
        new = (
            apply(args.kind, state, args.target, at=uptime())
            if args.cmd == "apply"
            else heal(state)
        )
        st.save_state(new)
        if new.get("hccn") != state.get("hccn"):  # tls switch flipped: /etc/hccn.conf follows
            from . import hccn_tool

            hccn_tool.write_conf(new["hccn"])
    else:
        for f in state.get("faults", []):
            target = f" target={f['target']}" if "target" in f else ""
            print(f"{f['kind']}{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
