"""Simulated Vastai `vasmi` (from the lab's vastai_driver_install_<ver>.run).

NOT FROM A CAPTURED SAMPLE: no public `vasmi` output exists (vastai.md: "vasmi list output:
not found"). `vasmi list` prints a plain table of our own design, documented here so parsers in
ironserve know it: a header line, then one line per die:
``<dev_id>  <card>  <die>  <bus_id>  VA16  <mem MiB>MiB  <temp>C  OK``. `vasmi getfreq -d N -i M`
prints ``OCLK: <n> MHz`` style lines, the only format public code implies (vastai.md 3).
"""

from __future__ import annotations

import os
import sys

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import state as st

JSON = st.JSON


def list_dies(hw: JSON, driver: str) -> str:
    out = [
        f"vasmi driver version: {driver}",
        "DevID  Card  Die  BusID         Name  Memory    Temp  Status",
    ]
    for d in hw["devices"]:
        out.append(
            f"{d['index']:<7}{d['card']:<6}{d['die']:<5}{d['pci_bus_id']:<14}{d['name']:<6}"
            f"{str(d['memory_mib']) + 'MiB':<10}{str(d['temperature_c']) + 'C':<6}OK"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    hw = st.load_hardware()
    state = st.load_state()
    if not state["vastai"].get("devices_present"):
        sys.stderr.write("vasmi: no vastai device found, please check the driver\n")
        return 1
    driver = str(state["vastai"].get("driver"))
    if args[:1] == ["list"]:
        sys.stdout.write(list_dies(hw, driver))
        return 0
    if args[:1] == ["getfreq"]:
        sys.stdout.write("OCLK: 1000 MHz\nODSPCLK: 1200 MHz\nVCLK: 800 MHz\n")
        return 0
    sys.stderr.write("vasmi: only `list` and `getfreq` are simulated\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
