"""Simulated Huawei `npu-smi` (installed to /usr/local/bin by the Ascend driver .run).

`npu-smi info`: the 8-NPU table as driver 23.0.7/24.1.rc3 print it (ascend.md 1a/1b).
`npu-smi info -t health -i N [-c 0]`: the three-line form of ascend.md 2 (no leading space).
`npu-smi info -t board -i N`: ascend.md 3 layout. The npu-alarm fault turns one NPU's Health to
``Alarm``; no real non-OK health output was found, so its error code is an assumption.
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
from . import state as st

JSON = st.JSON

ALARM_CODE = "80E01801"  # assumption: the code Huawei's hand-written examples use
_ROW_SEP = "+" + "=" * 27 + "+" + "=" * 15 + "+" + "=" * 52 + "+"
_DASH_SEP = "+" + "-" * 27 + "+" + "-" * 15 + "+" + "-" * 52 + "+"


def npus(hw: JSON, state: JSON) -> list[JSON]:
    devices: list[JSON] = hw.get("devices", []) if hw.get("vendor") == "ascend" else []
    alarm = fl.targets(state, "npu-alarm", len(devices))
    return [{**d, "health": "Alarm" if d["index"] in alarm else "OK"} for d in devices]


def info_table(devices: list[JSON], version: str) -> str:
    out = [
        "+" + "-" * 96 + "+",
        f"| npu-smi {version:<25}Version: {version:<53}|",
        _DASH_SEP,
        "| NPU   Name                | Health        | Power(W)    Temp(C)           "
        "Hugepages-Usage(page)|",
        "| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  "
        "HBM-Usage(MB)        |",
        _ROW_SEP,
    ]
    for d in devices:
        power = f"{d['power_w']:.1f}"
        out += [
            f"| {d['index']:<6}{d['name']:<20}| {d['health']:<14}| {power:<12}"
            f"{d['temperature_c']:<18}{0:<5}/ {0:<14}|",
            f"| {d['chip']:<26}| {d['pci_bus_id']:<14}| {0:<12}{0:<5}/ {0:<11}"
            f"{d['hbm_used_mb']:<5}/ {d['hbm_mb']:<14}|",
            _ROW_SEP,
        ]
    out += [
        _DASH_SEP,
        "| NPU     Chip              | Process id    | Process name             "
        "| Process memory(MB)      |",
        _ROW_SEP,
    ]
    for d in devices:
        out += [f"| {'No running processes found in NPU ' + str(d['index']):<95}|", _ROW_SEP]
    return "\n".join(out) + "\n"


def health(d: JSON) -> str:
    ok = d["health"] == "OK"
    return (
        f"{'Health Status':<31}: {d['health']}\n"
        f"{'Error Code':<31}: {'NA' if ok else ALARM_CODE}\n"
        f"{'Error Information':<31}: NA\n"
    )


def board(d: JSON, hw: JSON) -> str:
    rows = [
        ("NPU ID", str(d["index"])),
        ("Software Version", hw["versions"]["ascend_driver"]),
        ("Firmware Version", hw["versions"]["ascend_firmware"]),
        ("Compatibility", "OK"),
        ("Board ID", "0x02"),
        ("PCB ID", "A"),
        ("BOM ID", "1"),
        ("PCIe Bus Info", d["pci_bus_id"]),
        ("Slot ID", str(d["index"])),
        ("Class ID", "NA"),
        ("PCI Vendor ID", "0x19e5"),
        ("PCI Device ID", "0xD802"),
        ("Subsystem Vendor ID", "0x0200"),
        ("Subsystem Device ID", "0x0100"),
        ("Chip Count", "1"),
    ]
    return "".join(f"{k:<31}: {v}\n" for k, v in rows)


def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    hw = st.load_hardware()
    state = st.load_state()
    version = str(state["ascend"].get("driver") or hw["versions"].get("ascend_driver", ""))
    devices = npus(hw, state)
    if args[:1] != ["info"]:
        sys.stderr.write("Usage: npu-smi info [-t type] [-i id] [-c chip_id]\n")
        return 1
    kind, ident = _opt(args, "-t"), _opt(args, "-i")
    if kind is None:
        sys.stdout.write(info_table(devices, version))
        return 0
    chosen = [d for d in devices if ident is not None and str(d["index"]) == ident]
    if not chosen:
        sys.stdout.write("Invalid device ID.\n")
        return 1
    if kind == "health":
        sys.stdout.write(health(chosen[0]))
    elif kind == "board":
        sys.stdout.write(board(chosen[0], hw))
    else:
        sys.stdout.write(f"Invalid type {kind}.\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
