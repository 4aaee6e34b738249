"""What vendor installers change in the sim state (called by .deb maintainer scripts and .run).

``install_state.py nvidia-driver VERSION`` / ``nvidia-driver-removed`` /
``ascend-driver VERSION`` / ``ascend-firmware VERSION`` / ``vastai-driver VERSION``.
"""

from __future__ import annotations

import os
import stat
import sys

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import faults as fl
from . import state as st

JSON = st.JSON


def _kernlog(state: JSON, msg: str) -> None:
    state.setdefault("kernlog", []).append({"at": fl.uptime(), "msg": msg})


def nvidia_driver(state: JSON, version: str) -> None:
    state["nvidia"].update({"driver": version, "loaded": True})
    _kernlog(
        state,
        f"NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build  "
        "(dvs-builder@U22-I3-B10-02-5)  Mon Jun  2 13:13:04 UTC 2025",
    )


def _device_node(node_path: str, minor: int) -> None:
    """A char device when we may mknod (so `docker run --device` accepts it), else a file."""
    target = st.path(node_path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
        return
    try:
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # behaves like /dev/null
    except OSError:
        with open(target, "w", encoding="ascii"):
            pass


def vastai_driver(state: JSON, hw: JSON, version: str) -> None:
    for d in hw["devices"]:
        _device_node(f"/dev/vacc{d['index']}", d["index"])
    st.write_file("/dev/vastai0_version", f"Driver Version: {version}\n")
    state["vastai"].update({"driver": version, "devices_present": True})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    state = st.load_state()
    what, version = args[0], (args[1] if len(args) > 1 else "")
    if what == "nvidia-driver":
        nvidia_driver(state, version)
    elif what == "nvidia-driver-removed":
        state["nvidia"].update({"driver": None, "loaded": False})
    elif what == "ascend-driver":
        state["ascend"]["driver"] = version
    elif what == "ascend-firmware":
        state["ascend"]["firmware"] = version
    elif what == "vastai-driver":
        vastai_driver(state, st.load_hardware(), version)
    elif what == "kernlog":
        _kernlog(state, version)
    else:
        sys.stderr.write(f"install_state: unknown action {what}\n")
        return 2
    st.save_state(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
