"""The GPUs nvidia-smi (and dcgmi) can see on a simulated node, after faults.

One place decides what a fault does to the GPU list, so every tool agrees:
- gpu-missing: the GPU is not enumerated at all (not on the PCI bus): later GPUs shift index.
- xid-79: the GPU fell off the bus; NVML cannot get a handle ("GPU is lost").
- ecc-uncorrectable: 2 volatile (and aggregate) uncorrectable DRAM errors.
- row-remap-pending: one uncorrectable row marked for remapping, pending a GPU reset.
- fabricmanager-down: NVSwitch systems never finish fabric training ("In Progress").
"""

from __future__ import annotations

import os
from typing import Any

from . import faults as fl
from . import state as st

JSON = dict[str, Any]

FM_PID_FILE = "/var/run/nvidia-fabricmanager/nv-fabricmanager.pid"


def fabric_manager_running() -> bool:
    """True when the fabric manager daemon's pid file names a live process (as NVML sees it)."""
    try:
        with open(st.path(FM_PID_FILE), encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def missing_buses(hw: JSON, state: JSON) -> set[int]:
    devices = hw.get("devices", []) if hw.get("vendor") == "nvidia" else []
    return {devices[i]["pci_bus"] for i in fl.targets(state, "gpu-missing", len(devices))}


def visible_gpus(hw: JSON, state: JSON) -> list[JSON]:
    """GPUs in enumeration order, re-indexed, each with its fault-derived status."""
    if hw.get("vendor") != "nvidia":
        return []
    devices: list[JSON] = hw["devices"]
    n = len(devices)
    missing = fl.targets(state, "gpu-missing", n)
    lost = fl.targets(state, "xid-79", n)
    ecc = fl.targets(state, "ecc-uncorrectable", n)
    remap = fl.targets(state, "row-remap-pending", n)
    persistence = set(state["nvidia"].get("persistence", []))
    if hw.get("nvswitches"):
        fm_ok = fabric_manager_running() and not st.faults(state, "fabricmanager-down")
        fabric = ("Completed", "Success") if fm_ok else ("In Progress", "N/A")
    else:
        fabric = ("N/A", "N/A")
    out: list[JSON] = []
    for i, dev in enumerate(devices):
        if i in missing:
            continue
        g = dict(dev)
        g["index"] = len(out)
        g["lost"] = i in lost
        g["ecc_uncorrected"] = 2 if i in ecc else 0
        g["remap_pending"] = i in remap
        g["persistence"] = dev["pci_bus_id"] in persistence
        g["fabric"] = fabric
        out.append(g)
    return out


def lost_message(g: JSON) -> str:
    bus = g["pci_bus_id"][4:]  # NVML prints the 4-digit-domain form here: 0000:19:00.0
    return (
        f"Unable to determine the device handle for GPU{bus}: GPU is lost.  "
        "Reboot the system to recover this GPU"
    )
