"""Simulated `ibstat`, `ibstatus` and `ibv_devinfo` (one script, dispatching on argv[0]).

Formats: ibstat as infiniband-diags prints it (TAB-indented, infiniband.md 1, fixture
ibstat.47.0.h100.some.down.0), ibstatus (infiniband.md 2), ibv_devinfo (infiniband.md 3,
TABs as emitted). The ib-port-down fault sets the port Down/Disabled in every view, which is
what a disabled port looks like to each tool.
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


def hcas(hw: JSON, state: JSON) -> list[JSON]:
    """HCAs with fault-derived port state."""
    found: list[JSON] = hw.get("hcas", [])
    down = fl.targets(state, "ib-port-down", len(found))
    out = []
    for i, h in enumerate(found):
        ports = []
        for p in h["ports"]:
            p = dict(p)
            if i in down:
                p["state"], p["physical_state"] = "Down", "Disabled"
            ports.append(p)
        out.append({**h, "ports": ports})
    return out


def ibstat(devices: list[JSON], names: list[str]) -> str:
    out = []
    for h in devices:
        if names and h["name"] not in names:
            continue
        out += [
            f"CA '{h['name']}'",
            f"\tCA type: {h['ca_type']}",
            f"\tNumber of ports: {len(h['ports'])}",
            f"\tFirmware version: {h['firmware']}",
            f"\tHardware version: {h['hw_version']}",
            f"\tNode GUID: {h['node_guid']}",
            f"\tSystem image GUID: {h['system_image_guid']}",
        ]
        for p in h["ports"]:
            out += [
                f"\tPort {p['port']}:",
                f"\t\tState: {p['state']}",
                f"\t\tPhysical state: {p['physical_state']}",
                f"\t\tRate: {p['rate']}",
                f"\t\tBase lid: {p['base_lid']}",
                f"\t\tLMC: {p['lmc']}",
                f"\t\tSM lid: {p['sm_lid']}",
                f"\t\tCapability mask: {p['capability_mask']}",
                f"\t\tPort GUID: {p['port_guid']}",
                f"\t\tLink layer: {p['link_layer']}",
            ]
    return "\n".join(out) + "\n" if out else ""


_STATE_NUM = {"Active": "4: ACTIVE", "Down": "1: DOWN", "Initializing": "2: INIT"}
_PHYS_NUM = {"LinkUp": "5: LinkUp", "Disabled": "3: Disabled", "Polling": "2: Polling"}
_VERBS_STATE = {
    "Active": "PORT_ACTIVE (4)",
    "Down": "PORT_DOWN (1)",
    "Initializing": "PORT_INIT (2)",
}


def _gid(guid: str) -> str:
    g = guid[2:].rjust(16, "0")
    return "fe80:0000:0000:0000:" + ":".join(g[i : i + 4] for i in range(0, 16, 4))


def ibstatus(devices: list[JSON]) -> str:
    out = []
    for h in devices:
        for p in h["ports"]:
            out += [
                f"Infiniband device '{h['name']}' port {p['port']} status:",
                f"        {'default gid:':<17}{_gid(p['port_guid'])}",
                f"        {'base lid:':<17}{p['base_lid']:#x}",
                f"        {'sm lid:':<17}{p['sm_lid']:#x}",
                f"        {'state:':<17}{_STATE_NUM[p['state']]}",
                f"        {'phys state:':<17}{_PHYS_NUM[p['physical_state']]}",
                f"        {'rate:':<17}{p['rate_text']}",
                f"        {'link_layer:':<17}{p['link_layer']}",
                "",
            ]
    return "\n".join(out) + "\n" if out else ""


def _colon_guid(guid: str) -> str:
    g = guid[2:].rjust(16, "0")
    return ":".join(g[i : i + 4] for i in range(0, 16, 4))


def _mtu(n: int) -> str:
    return f"{n} ({ {256: 1, 512: 2, 1024: 3, 2048: 4, 4096: 5}[n] })"


def ibv_devinfo(devices: list[JSON]) -> str:
    out = []
    for h in devices:
        out += [
            f"hca_id:\t{h['name']}",
            "\ttransport:\t\t\tInfiniBand (0)",
            f"\tfw_ver:\t\t\t\t{h['firmware']}",
            f"\tnode_guid:\t\t\t{_colon_guid(h['node_guid'])}",
            f"\tsys_image_guid:\t\t\t{_colon_guid(h['system_image_guid'])}",
            f"\tvendor_id:\t\t\t{h['vendor_id']}",
            f"\tvendor_part_id:\t\t\t{h['vendor_part_id']}",
            "\thw_ver:\t\t\t\t0x0",
            f"\tboard_id:\t\t\t{h['board_id']}",
            f"\tphys_port_cnt:\t\t\t{len(h['ports'])}",
        ]
        for p in h["ports"]:
            out += [
                f"\t\tport:\t{p['port']}",
                f"\t\t\tstate:\t\t\t{_VERBS_STATE[p['state']]}",
                f"\t\t\tmax_mtu:\t\t{_mtu(p['max_mtu'])}",
                f"\t\t\tactive_mtu:\t\t{_mtu(p['active_mtu'])}",
                f"\t\t\tsm_lid:\t\t\t{p['sm_lid']}",
                f"\t\t\tport_lid:\t\t{p['base_lid']}",
                f"\t\t\tport_lmc:\t\t0x{p['lmc']:02x}",
                f"\t\t\tlink_layer:\t\t{p['link_layer']}",
            ]
        out.append("")
    return "\n".join(out) + "\n" if out else ""


def main(argv: list[str] | None = None) -> int:
    prog = os.path.basename(sys.argv[0])
    args = sys.argv[1:] if argv is None else argv
    if args[:1] and args[0] in ("ibstat", "ibstatus", "ibv_devinfo"):
        prog, args = args[0], args[1:]  # `ibstat.py ibstatus` when run from the source tree
    devices = hcas(st.load_hardware(), st.load_state())
    if not devices:
        if prog == "ibv_devinfo":
            sys.stdout.write("No IB devices found\n")
        return 0 if prog != "ibv_devinfo" else 255
    if prog == "ibstatus":
        text = ibstatus([h for h in devices if not args or h["name"] in args])
    elif prog == "ibv_devinfo":
        wanted = args[args.index("-d") + 1] if "-d" in args else None
        text = ibv_devinfo([h for h in devices if wanted in (None, h["name"])])
    else:
        names = [a for a in args if not a.startswith("-")]
        if names and names[0] not in {h["name"] for h in devices}:
            sys.stderr.write(
                f"ibpanic: [{os.getpid()}] main: '{names[0]}' IB device can't be found: "
                "No such file or directory\n"
            )
            return 255
        text = ibstat(devices, names[:1])
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
