"""Simulated `lspci` (pciutils) for lab nodes: the node's accelerators, switches and HCAs.

Line formats are pciutils': ``BB:DD.F Class: Vendor Device (rev RR)``; ``-nn`` adds
``[cccc]`` after the class and ``[vvvv:dddd]`` after the device name; ``-n`` prints only
numbers; names unknown to pci.ids print as ``Device dddd`` (known vendor) or
``Device vvvv:dddd`` (unknown vendor), as lspci does. ``-d [vendor]:[device]`` filters.
Faults: gpu-missing removes the GPU's function; xid-79 leaves it listed with config space
reading all ones, so lspci shows ``(rev ff)``.
"""

from __future__ import annotations

import os
import sys

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import faults as fl
from . import nvgpu
from . import state as st

JSON = st.JSON


def devices(hw: JSON, state: JSON) -> list[JSON]:
    missing = nvgpu.missing_buses(hw, state)
    lost: set[int] = set()
    if hw.get("vendor") == "nvidia":
        gpus = hw["devices"]
        lost = {gpus[i]["pci_bus"] for i in fl.targets(state, "xid-79", len(gpus))}
    out = []
    for d in hw.get("pci_devices", []):
        bus = int(d["slot"].split(":")[1], 16)
        if d["class_code"] == "0302" and bus in missing:
            continue
        if d["class_code"] == "0302" and bus in lost:
            d = {**d, "rev": "ff"}
        out.append(d)
    return out


def _name(d: JSON, numeric_too: bool) -> str:
    ids = f"{d['vendor_id']}:{d['device_id']}"
    if not d["vendor_name"]:
        return f"Device [{ids}]" if numeric_too else f"Device {ids}"
    device = d["device_name"] or f"Device {d['device_id']}"
    if numeric_too:
        device = f"{d['device_name']} [{ids}]" if d["device_name"] else f"Device [{ids}]"
    return f"{d['vendor_name']} {device}"


def format_line(d: JSON, mode: str, domain: bool) -> str:
    slot = d["slot"] if domain else d["slot"][5:]
    rev = f" (rev {d['rev']})" if d.get("rev") and d["rev"] != "00" else ""
    if mode == "n":
        return f"{slot} {d['class_code']}: {d['vendor_id']}:{d['device_id']}{rev}"
    if mode == "nn":
        cls = f"{d['class_name']} [{d['class_code']}]"
        return f"{slot} {cls}: {_name(d, True)}{rev}"
    return f"{slot} {d['class_name']}: {_name(d, False)}{rev}"


def _matches(d: JSON, spec: str) -> bool:
    vendor, _, rest = spec.partition(":")
    device, _, cls = rest.partition(":")
    return (
        (not vendor or d["vendor_id"] == vendor.lower())
        and (not device or d["device_id"] == device.lower())
        and (not cls or d["class_code"] == cls.lower())
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mode, domain, spec = "", False, ""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-nn":
            mode = "nn"
        elif a == "-n":
            mode = mode or "n"
        elif a == "-D":
            domain = True
        elif a == "-d" and i + 1 < len(args):
            spec, i = args[i + 1], i + 1
        elif a.startswith("-d"):
            spec = a[2:]
        i += 1
    hw = st.load_hardware()
    for d in devices(hw, st.load_state()):
        if spec and not _matches(d, spec):
            continue
        print(format_line(d, mode, domain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
