"""RDMA facts: InfiniBand / RoCE port state from ``ibstat`` or sysfs, and the verbs devices from
``ibv_devinfo``.

.. code:: python

    host.get_fact(IbPorts)
    [{"ca": "mlx5_0", "port": 1, "ca_type": "MT4129", "firmware": "28.39.1002",
      "state": "ACTIVE", "physical_state": "LinkUp", "rate_gbps": 400.0,
      "link_layer": "InfiniBand", "base_lid": 75, "sm_lid": 334,
      "port_guid": "0x946dae0300cde72c"}]
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from pyinfra.api.facts import FactBase

from ironserve.facts._parse import clean, to_int


class IbPort(TypedDict):
    ca: str
    port: int
    ca_type: str | None
    firmware: str | None
    state: str | None
    physical_state: str | None
    rate_gbps: float | None
    link_layer: str | None
    base_lid: int | None
    sm_lid: int | None
    port_guid: str | None


_STATE_WORDS = {
    "active": "ACTIVE",
    "down": "DOWN",
    "initializing": "INIT",
    "init": "INIT",
    "armed": "ARMED",
    "active_defer": "ACTIVE_DEFER",
}
_NUMBERED_RE = re.compile(r"^\d+:\s*(.*)$")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)")


def normalize_state(value: str | None) -> str | None:
    """``Active`` (ibstat), ``4: ACTIVE`` (sysfs, ibstatus) -> ``ACTIVE``; ``Initializing`` ->
    ``INIT``."""
    text = clean(value)
    if text is None:
        return None
    numbered = _NUMBERED_RE.match(text)
    if numbered:
        text = numbered.group(1)
    return _STATE_WORDS.get(text.lower(), text.upper())


def normalize_phys_state(value: str | None) -> str | None:
    """``LinkUp`` (ibstat), ``5: LinkUp`` (sysfs) -> ``LinkUp``."""
    text = clean(value)
    if text is None:
        return None
    numbered = _NUMBERED_RE.match(text)
    return numbered.group(1) if numbered else text


def parse_rate(value: str | None) -> float | None:
    """``400`` (ibstat), ``400 Gb/sec (4X NDR)`` (sysfs) -> 400.0."""
    text = clean(value)
    match = _RATE_RE.match(text) if text else None
    return float(match.group(1)) if match else None


def _new_port(ca: str, port: int, ca_info: dict[str, str]) -> IbPort:
    return IbPort(
        ca=ca,
        port=port,
        ca_type=clean(ca_info.get("ca type") or ca_info.get("hca_type")),
        firmware=clean(ca_info.get("firmware version") or ca_info.get("fw_ver")),
        state=None,
        physical_state=None,
        rate_gbps=None,
        link_layer=None,
        base_lid=None,
        sm_lid=None,
        port_guid=None,
    )


def _set_port_value(port: IbPort, key: str, value: str) -> None:
    if key == "state":
        port["state"] = normalize_state(value)
    elif key in ("physical state", "phys state", "phys_state"):
        port["physical_state"] = normalize_phys_state(value)
    elif key == "rate":
        port["rate_gbps"] = parse_rate(value)
    elif key in ("link layer", "link_layer"):
        port["link_layer"] = clean(value)
    elif key == "base lid":
        port["base_lid"] = to_int(value)
    elif key == "sm lid":
        port["sm_lid"] = to_int(value)
    elif key == "port guid":
        port["port_guid"] = clean(value)


_CA_RE = re.compile(r"^CA '([^']+)'$")
_PORT_RE = re.compile(r"^Port (\d+):$")


def parse_ibstat(lines: list[str]) -> list[IbPort]:
    """Parse ``ibstat`` (TAB- or space-indented; a trailing ``ibpanic:`` line is ignored)."""
    ports: list[IbPort] = []
    ca: str | None = None
    ca_info: dict[str, str] = {}
    port: IbPort | None = None
    for raw in lines:
        line = raw.strip()
        ca_match = _CA_RE.match(line)
        if ca_match:
            ca, ca_info, port = ca_match.group(1), {}, None
            continue
        if ca is None:
            continue
        port_match = _PORT_RE.match(line)
        if port_match:
            port = _new_port(ca, int(port_match.group(1)), ca_info)
            ports.append(port)
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if port is None:
            ca_info[key] = value.strip()
        else:
            _set_port_value(port, key, value.strip())
    return ports


_IBSTATUS_RE = re.compile(r"^Infiniband device '([^']+)' port (\d+) status:$")


def parse_ibstatus(lines: list[str]) -> list[IbPort]:
    """Parse ``ibstatus`` (``Infiniband device 'mlx5_0' port 1 status:`` blocks)."""
    ports: list[IbPort] = []
    port: IbPort | None = None
    for raw in lines:
        line = raw.strip()
        head = _IBSTATUS_RE.match(line)
        if head:
            port = _new_port(head.group(1), int(head.group(2)), {})
            ports.append(port)
            continue
        key, sep, value = line.partition(":")
        if port is not None and sep:
            _set_port_value(port, key.strip().lower(), value.strip())
    return ports


_SYSFS_RE = re.compile(r"^([^/\s]+)/(?:ports/(\d+)/)?([a-z_]+):\s?(.*)$")


def parse_ib_sysfs(lines: list[str]) -> list[IbPort]:
    """Parse ``<dev>/ports/<n>/<attr>: <value>`` and ``<dev>/<attr>: <value>`` lines, as printed
    by :class:`IbSysfsPorts` from ``/sys/class/infiniband``."""
    devices: dict[str, dict[str, str]] = {}
    port_values: dict[tuple[str, int], dict[str, str]] = {}
    for raw in lines:
        match = _SYSFS_RE.match(raw.strip())
        if match is None:
            continue
        device, port, attr, value = match.groups()
        if port is None:
            devices.setdefault(device, {})[attr] = value.strip()
        else:
            port_values.setdefault((device, int(port)), {})[attr] = value.strip()
    ports: list[IbPort] = []
    for (device, number), values in sorted(port_values.items()):
        port = _new_port(device, number, devices.get(device, {}))
        for attr, value in values.items():
            _set_port_value(port, attr, value)
        ports.append(port)
    return ports


class IbPorts(FactBase[list[IbPort]]):
    """One entry per HCA port from ``ibstat`` (infiniband-diags).

    ``state`` is normalised to the sysfs spelling (``ACTIVE``, ``DOWN``, ``INIT``, ``ARMED``);
    ``rate_gbps`` is the port's signalling rate. RoCE ports show ``link_layer: Ethernet`` and
    ``base_lid: 0``.

    .. code:: python

        [{"ca": "mlx5_0", "port": 1, "ca_type": "MT4129", "firmware": "28.39.1002",
          "state": "ACTIVE", "physical_state": "LinkUp", "rate_gbps": 400.0,
          "link_layer": "InfiniBand", "base_lid": 75, "sm_lid": 334,
          "port_guid": "0x946dae0300cde72c"}]
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "ibstat"

    def command(self) -> str:
        # ibstat exits 255 when a device vanishes mid-scan; keep what it printed.
        return "ibstat 2>&1 || true"

    @staticmethod
    def default() -> list[IbPort]:
        return []

    def process(self, output: list[str]) -> list[IbPort]:
        return parse_ibstat(output)


class IbSysfsPorts(FactBase[list[IbPort]]):
    """The same port list as :class:`IbPorts`, read from ``/sys/class/infiniband`` (needs no
    user-space tools; ``base_lid``, ``sm_lid`` and ``port_guid`` are not read).

    .. code:: python

        [{"ca": "mlx5_0", "port": 1, "ca_type": "MT4129", "firmware": "28.41.1000",
          "state": "ACTIVE", "physical_state": "LinkUp", "rate_gbps": 400.0,
          "link_layer": "InfiniBand", "base_lid": None, "sm_lid": None, "port_guid": None}]
    """

    def command(self) -> str:
        return (
            "cd /sys/class/infiniband 2>/dev/null && for f in */hca_type */fw_ver"
            " */ports/*/state */ports/*/phys_state */ports/*/rate */ports/*/link_layer; do"
            ' [ -r "$f" ] && printf \'%s: %s\\n\' "$f" "$(cat "$f" 2>/dev/null)"; done; true'
        )

    @staticmethod
    def default() -> list[IbPort]:
        return []

    def process(self, output: list[str]) -> list[IbPort]:
        return parse_ib_sysfs(output)


# --------------------------------------------------------------------------------------------
# ibv_devinfo
# --------------------------------------------------------------------------------------------


class IbvPort(TypedDict):
    port: int
    state: str | None
    max_mtu: int | None
    active_mtu: int | None
    sm_lid: int | None
    port_lid: int | None
    link_layer: str | None


class IbvDevice(TypedDict):
    hca_id: str
    transport: str | None
    fw_ver: str | None
    node_guid: str | None
    vendor_id: str | None
    vendor_part_id: int | None
    board_id: str | None
    phys_port_cnt: int | None
    ports: list[IbvPort]


def _strip_code(value: str) -> str | None:
    """``PORT_ACTIVE (4)`` -> ``PORT_ACTIVE``; ``InfiniBand (0)`` -> ``InfiniBand``."""
    return clean(re.sub(r"\s*\(\d+\)$", "", value))


def parse_ibv_devinfo(lines: list[str]) -> list[IbvDevice]:
    """Parse ``ibv_devinfo`` (non-verbose) into devices with their ports."""
    devices: list[IbvDevice] = []
    device: IbvDevice | None = None
    port: IbvPort | None = None
    for raw in lines:
        key, sep, value = raw.strip().partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "hca_id":
            device = IbvDevice(
                hca_id=value,
                transport=None,
                fw_ver=None,
                node_guid=None,
                vendor_id=None,
                vendor_part_id=None,
                board_id=None,
                phys_port_cnt=None,
                ports=[],
            )
            devices.append(device)
            port = None
            continue
        if device is None:
            continue
        if key == "port" and value.isdigit():
            port = IbvPort(
                port=int(value),
                state=None,
                max_mtu=None,
                active_mtu=None,
                sm_lid=None,
                port_lid=None,
                link_layer=None,
            )
            device["ports"].append(port)
        elif port is not None:
            if key == "state":
                port["state"] = _strip_code(value)
            elif key == "max_mtu":
                port["max_mtu"] = to_int(_strip_code(value))
            elif key == "active_mtu":
                port["active_mtu"] = to_int(_strip_code(value))
            elif key == "sm_lid":
                port["sm_lid"] = to_int(value)
            elif key == "port_lid":
                port["port_lid"] = to_int(value)
            elif key == "link_layer":
                port["link_layer"] = clean(value)
        elif key == "transport":
            device["transport"] = _strip_code(value)
        elif key == "fw_ver":
            device["fw_ver"] = clean(value)
        elif key == "node_guid":
            device["node_guid"] = clean(value)
        elif key == "vendor_id":
            device["vendor_id"] = clean(value)
        elif key == "board_id":
            device["board_id"] = clean(value)
        elif key == "vendor_part_id":
            device["vendor_part_id"] = to_int(value)
        elif key == "phys_port_cnt":
            device["phys_port_cnt"] = to_int(value)
    return devices


class IbvDevices(FactBase[list[IbvDevice]]):
    """The RDMA verbs devices and their ports from ``ibv_devinfo`` (rdma-core).

    .. code:: python

        [{"hca_id": "mlx5_0", "transport": "InfiniBand", "fw_ver": "28.41.1000",
          "node_guid": "58a2:e103:001a:677e", "vendor_id": "0x02c9", "vendor_part_id": 4129,
          "board_id": "DEL0000000036", "phys_port_cnt": 1,
          "ports": [{"port": 1, "state": "PORT_ACTIVE", "max_mtu": 4096, "active_mtu": 4096,
                     "sm_lid": 5790, "port_lid": 3697, "link_layer": "InfiniBand"}]}]
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "ibv_devinfo"

    def command(self) -> str:
        return "ibv_devinfo 2>&1 || true"

    @staticmethod
    def default() -> list[IbvDevice]:
        return []

    def process(self, output: list[str]) -> list[IbvDevice]:
        return parse_ibv_devinfo(output)
