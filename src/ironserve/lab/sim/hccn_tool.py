"""Simulated Huawei `hccn_tool` (installed to /usr/local/Ascend/driver/tools/hccn_tool).

Stateful: settings live in the sim state and are mirrored to /etc/hccn.conf in the real
``key_N=value`` layout (ascend.md 5: address, netmask, netdetect, gateway, then tls_enable).
Get outputs are the captured ones (ascend.md 4a-4f). ``-ping`` cannot see other lab nodes' NPUs,
so it succeeds for any address in the same /24 as this NPU's own address while the link is up.
Faults: npu-link-down (link DOWN, net_health Fault, ping fails), npu-tls-mismatch (tls 1).
Set commands print nothing and exit 0, as the real tool does on success.
"""

from __future__ import annotations

import ipaddress
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

CONF = "/etc/hccn.conf"
_CONF_KEYS = (
    ("address", "address"),
    ("netmask", "netmask"),
    ("netdetect", "netdetect"),
    ("gateway", "gateway"),
    ("tls", "tls_enable"),
)


def write_conf(hccn: JSON) -> None:
    lines = []
    for dev in sorted(hccn, key=int):
        for key, conf_key in _CONF_KEYS:
            if key in hccn[dev]:
                lines.append(f"{conf_key}_{dev}={hccn[dev][key]}")
    st.write_file(CONF, "".join(f"{line}\n" for line in lines))


def _kv(args: list[str]) -> dict[str, str]:
    """`address A netmask M` -> {"address": "A", "netmask": "M"}."""
    return {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}


def _link_up(state: JSON, dev: int, count: int) -> bool:
    return dev not in fl.targets(state, "npu-link-down", count)


def _same_net(cfg: JSON, b: str) -> bool:
    """``b`` is on the port's subnet (its address and netmask; /24 when no netmask is set)."""
    mask = cfg.get("netmask") or "255.255.255.0"
    try:
        return ipaddress.ip_address(b) in ipaddress.ip_interface(f"{cfg['address']}/{mask}").network
    except ValueError:
        return False


def run(args: list[str], hw: JSON, state: JSON) -> tuple[int, str]:
    """(exit code, stdout) of one hccn_tool call; mutates state on -s commands."""
    count = len(hw.get("npu_ports", []))
    if len(args) < 3 or args[0] != "-i" or not args[1].isdigit():
        return 1, "Usage: hccn_tool -i <device_id> <command> ...\n"
    dev = int(args[1])
    if dev >= count:
        return 1, f"device id {dev} is invalid.\n"
    cmd, rest = args[2], args[3:]
    cfg: JSON = state.setdefault("hccn", {}).setdefault(str(dev), {})
    setting = rest[:1] == ["-s"]
    params = _kv(rest[1:]) if setting else {}
    if cmd == "-ip":
        if setting:
            if "address" not in params or "netmask" not in params:
                return 1, "Parameter error, please check.\n"
            cfg["address"], cfg["netmask"] = params["address"], params["netmask"]
            return 0, ""
        if "address" not in cfg:
            return 1, "ipaddr is not configured.\n"  # wording assumed: no capture of this case
        return 0, f"ipaddr:{cfg['address']}\nnetmask:{cfg['netmask']}\n"
    if cmd == "-netdetect":
        if setting:
            cfg["netdetect"] = params.get("address", "")
            return 0, ""
        return 0, f"netdetect address: {cfg.get('netdetect', '')}\n"
    if cmd == "-gateway":
        if setting:
            cfg["gateway"] = params.get("gateway", "")
            return 0, ""
        return 0, f"default gateway:{cfg.get('gateway', '')}, Iface:eth{dev}\n"
    if cmd == "-tls":
        if setting:
            if params.get("enable") not in ("0", "1"):
                return 1, "Parameter error, please check.\n"
            cfg["tls"] = int(params["enable"])
            return 0, ""
        return 0, (
            f"dev_id:{dev}, tls switch[{cfg.get('tls', 0)}](0:disable, 1:enable), "
            "tls preconfigured[1](0:non-preset, 1:preset), tls alarm time threshold[60]days\n"
        )
    if cmd == "-link" and rest[:1] == ["-g"]:
        return 0, f"link status: {'UP' if _link_up(state, dev, count) else 'DOWN'}\n"
    if cmd == "-net_health" and rest[:1] == ["-g"]:
        if "netdetect" not in cfg or "address" not in cfg:
            status = "Init"
        elif _link_up(state, dev, count) and _same_net(cfg, cfg["netdetect"]):
            status = "Success"
        else:
            status = "Fault"
        return 0, f"net health status: {status}\n"
    if cmd == "-ping" and rest[:1] == ["-g"]:
        target = _kv(rest[1:]).get("address", "")
        ok = "address" in cfg and _link_up(state, dev, count) and _same_net(cfg, target)
        out = f"device {dev} PING {target}\n"
        if ok:
            out += "".join(f"recv seq={n},time=0.0{40 + n}000ms\n" for n in range(3))
            return 0, out + "3 packets transmitted, 3 received, 0.00% packet loss\n"
        return 1, out + "3 packets transmitted, 0 received, 100.00% packet loss\n"
    return 1, "Parameter error, please check.\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    hw = st.load_hardware()
    state = st.load_state()
    before = repr(state.get("hccn"))
    code, out = run(args, hw, state)
    if repr(state.get("hccn")) != before:
        st.save_state(state)
        write_conf(state["hccn"])
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
