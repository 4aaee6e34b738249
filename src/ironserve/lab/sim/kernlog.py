"""The simulated kernel ring buffer of a lab node, for `dmesg`/`journalctl -k` wrappers.

Containers share the host kernel, so the lab's node images point dmesg and journalctl -k at
this script. Lines come from the hardware (IOMMU), the installed drivers and the active faults;
formats are the captured ones (nvidia.md 4a-4c). ``--journal`` prints journalctl's
``Mon DD HH:MM:SS host kernel: msg`` form, otherwise dmesg's ``[ seconds] msg``.
The Vastai driver's IOMMU line has no public capture: only the substring the vendor's compose
check greps for ("iommu is enable") is known, the rest of its wording is ours.
"""

from __future__ import annotations

import os
import sys
import time

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import faults as fl
from . import state as st

JSON = st.JSON


def _short_bus(dev: JSON) -> str:
    return f"0000:{dev['pci_bus']:02x}:00"


def _fault_lines(hw: JSON, state: JSON) -> list[tuple[float, str]]:
    if hw.get("vendor") != "nvidia":
        return []
    gpus = hw["devices"]
    out: list[tuple[float, str]] = []
    for f in state.get("faults", []):
        at = float(f.get("at", 0.0))
        if "target" not in f:
            continue
        g = gpus[fl.resolve(int(f["target"]), len(gpus))]
        bus = _short_bus(g)
        if f["kind"] == "xid-79":
            out += [
                (at, f"NVRM: GPU at PCI:{bus}: {g['uuid']}"),
                (at, f"NVRM: GPU Board Serial Number: {g['serial']}"),
                (
                    at,
                    f"NVRM: Xid (PCI:{bus}): 79, pid='<unknown>', name=<unknown>, "
                    "GPU has fallen off the bus.",
                ),
                (at, f"NVRM: GPU {bus}.0: GPU has fallen off the bus."),
                (at, f"NVRM: GPU {bus}.0: GPU serial number is {g['serial']}."),
            ]
        elif f["kind"] == "ecc-uncorrectable":
            out.append(
                (
                    at,
                    f"NVRM: Xid (PCI:{bus}): 48, pid='<unknown>', name=<unknown>, An uncorrectable "
                    "double bit error (DBE) has been detected on GPU in the framebuffer at "
                    "physAddr 0x12bac1c3e0 partition 2, subpartition 1.",
                )
            )
        elif f["kind"] == "row-remap-pending":
            out.append(
                (
                    at,
                    f"NVRM: Xid (PCI:{bus}): 63, pid='<unknown>', name=<unknown>, Row Remapper: "
                    "New row (0x00000012bac1c3e0) marked for remapping, reset gpu to activate.",
                )
            )
    return out


def lines(hw: JSON, state: JSON) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    if hw.get("iommu_enabled"):
        out.append((0.012345, "DMAR: IOMMU enabled"))
    out += [(float(e["at"]), str(e["msg"])) for e in state.get("kernlog", [])]
    out += _fault_lines(hw, state)
    return sorted(out, key=lambda x: x[0])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    hw = st.load_hardware()
    journal = "--journal" in args
    boot = time.time() - fl.uptime()
    for at, msg in lines(hw, st.load_state()):
        if journal:
            stamp = time.strftime("%b %d %H:%M:%S", time.localtime(boot + at))
            print(f"{stamp} {hw.get('hostname', 'localhost')} kernel: {msg}")
        else:
            print(f"[{at:12.6f}] {msg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
