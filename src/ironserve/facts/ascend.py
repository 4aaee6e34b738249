"""Huawei Ascend NPU facts: the ``npu-smi info`` table, per-NPU health, the ``hccn_tool`` view of
each NPU's RoCE port (address, link, network health, TLS) and ``/etc/hccn.conf``.

Facts that loop over NPUs take the NPU count (``npu_count``, default 8) and return dicts keyed
by NPU id (``int``).

.. code:: python

    host.get_fact(HccnDeviceIps, npu_count=8)
    {0: {"ipaddr": "29.1.112.213", "netmask": "255.255.0.0"}, 1: {...}, ...}
"""

from __future__ import annotations

import re
import shlex
from typing import Any, TypedDict

from pyinfra.api.facts import FactBase

from ironserve.facts._parse import clean, split_marked, to_bool, to_float, to_int

#: ``hccn_tool`` ships in the driver's tools folder, which is often not on a non-login PATH.
HCCN_TOOL_FALLBACK = "/usr/local/Ascend/driver/tools/hccn_tool"
_NPU_MARKER = "@@npu"

# --------------------------------------------------------------------------------------------
# npu-smi info
# --------------------------------------------------------------------------------------------


class NpuChip(TypedDict):
    npu: int
    chip: int
    phy_id: int | None
    name: str
    health: str
    power_w: float | None
    temp_c: int | None
    aicore_pct: int | None
    bus_id: str
    memory_used_mb: int | None
    memory_total_mb: int | None
    hbm_used_mb: int | None
    hbm_total_mb: int | None


class NpuSmiTable(TypedDict):
    version: str | None
    chips: list[NpuChip]


_NPU_VERSION_RE = re.compile(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)")
_NPU_ROW_RE = re.compile(r"^\s*(\d+)\s+(\S.*?)\s*$")
_CHIP_ROW_RE = re.compile(r"^\s*(\d+)(?:\s+(\d+))?\s*$")
_HEALTH_RE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*$")
_BUS_RE = re.compile(r"^\s*([0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*$")
_PAIR_RE = re.compile(r"(\d+)\s*/\s*(\d+)")


def parse_npu_smi_info(lines: list[str]) -> NpuSmiTable:
    """Parse the ``npu-smi info`` table into one entry per chip.

    Each NPU prints two rows: ``| id  name | health | power temp hugepages |`` and
    ``| chip [phy-id] | bus-id | aicore memory hbm |``. A3 boards print several chip rows per
    NPU; each becomes an entry carrying the NPU row's name, health, power and temperature.
    Author elisions (``...``), prompts and the process table are ignored.
    """
    version_match = _NPU_VERSION_RE.search("\n".join(lines))
    chips: list[NpuChip] = []
    npu: tuple[int, str, str, float | None, int | None] | None = None
    for line in lines:
        stripped = line.strip()
        if "Process id" in stripped:
            break
        if not stripped.startswith("|") or stripped.startswith("|="):
            continue
        cells = stripped.strip("|").split("|")
        if len(cells) != 3:
            continue
        bus = _BUS_RE.match(cells[1])
        chip_row = _CHIP_ROW_RE.match(cells[0])
        if bus and chip_row and npu is not None:
            npu_id, name, health, power, temp = npu
            values = cells[2].split()
            pairs = _PAIR_RE.findall(cells[2])
            memory = pairs[0] if len(pairs) >= 2 else None
            hbm = pairs[-1] if pairs else None
            chips.append(
                NpuChip(
                    npu=npu_id,
                    chip=int(chip_row.group(1)),
                    phy_id=int(chip_row.group(2)) if chip_row.group(2) else None,
                    name=name,
                    health=health,
                    power_w=power,
                    temp_c=temp,
                    aicore_pct=to_int(values[0]) if values else None,
                    bus_id=bus.group(1),
                    memory_used_mb=int(memory[0]) if memory else None,
                    memory_total_mb=int(memory[1]) if memory else None,
                    hbm_used_mb=int(hbm[0]) if hbm else None,
                    hbm_total_mb=int(hbm[1]) if hbm else None,
                )
            )
            continue
        head = _NPU_ROW_RE.match(cells[0])
        health_cell = _HEALTH_RE.match(cells[1])
        if head and health_cell and not head.group(2).isdigit():
            values = cells[2].split()
            npu = (
                int(head.group(1)),
                head.group(2),
                health_cell.group(1),
                to_float(values[0]) if values else None,
                to_int(values[1]) if len(values) > 1 else None,
            )
    return NpuSmiTable(version=version_match.group(2) if version_match else None, chips=chips)


class NpuSmiInfo(FactBase[NpuSmiTable | None]):
    """The ``npu-smi info`` table: driver version and one entry per NPU chip.

    .. code:: python

        {"version": "23.0.7",
         "chips": [{"npu": 0, "chip": 0, "phy_id": None, "name": "910B2", "health": "OK",
                    "power_w": 96.5, "temp_c": 36, "aicore_pct": 0, "bus_id": "0000:C1:00.0",
                    "memory_used_mb": 0, "memory_total_mb": 0,
                    "hbm_used_mb": 29954, "hbm_total_mb": 65536}, ...]}
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "npu-smi"

    def command(self) -> str:
        return "npu-smi info"

    @staticmethod
    def default() -> NpuSmiTable | None:
        return None

    def process(self, output: list[str]) -> NpuSmiTable:
        return parse_npu_smi_info(output)


# --------------------------------------------------------------------------------------------
# npu-smi info -t health
# --------------------------------------------------------------------------------------------


class NpuHealthState(TypedDict):
    health: str | None
    error_code: str | None
    error_info: str | None


def _key_values(lines: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def parse_npu_health(lines: list[str]) -> NpuHealthState:
    """Parse ``Health Status : OK`` / ``Error Code : NA`` / ``Error Information : NA``."""
    values = _key_values(lines)
    return NpuHealthState(
        health=clean(values.get("health status")),
        error_code=clean(values.get("error code")),
        error_info=clean(values.get("error information")),
    )


def _npu_loop(npu_count: int, body: str) -> str:
    if npu_count < 1:
        raise ValueError(f"npu_count must be at least 1, got {npu_count}")
    return f'for i in $(seq 0 {npu_count - 1}); do echo "{_NPU_MARKER} $i"; {body}; done'


class NpuHealth(FactBase[dict[int, NpuHealthState]]):
    """Per-NPU health from ``npu-smi info -t health -i N -c 0``.

    + npu_count: number of NPUs to ask about (ids ``0 .. npu_count-1``)

    .. code:: python

        {0: {"health": "OK", "error_code": None, "error_info": None}, ...}
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "npu-smi"

    def command(self, npu_count: int = 8) -> str:
        return _npu_loop(npu_count, 'npu-smi info -t health -i "$i" -c 0 2>&1')

    @staticmethod
    def default() -> dict[int, NpuHealthState]:
        return {}

    def process(self, output: list[str]) -> dict[int, NpuHealthState]:
        return {
            npu: parse_npu_health(block) for npu, block in split_marked(output, _NPU_MARKER).items()
        }


# --------------------------------------------------------------------------------------------
# hccn_tool
# --------------------------------------------------------------------------------------------


def _hccn_loop(npu_count: int, args: str) -> str:
    """Run ``hccn_tool -i N <args>`` for each NPU; print nothing when the tool is absent.

    The command always succeeds: ``hccn_tool`` exits non-zero for an unconfigured port
    (``ipaddr is not configured.``), which is an answer to parse, not a failed fact.
    """
    loop = _npu_loop(npu_count, f'"$HCCN" -i "$i" {args} 2>&1')
    return (
        f"HCCN=$(command -v hccn_tool || echo {HCCN_TOOL_FALLBACK});"
        f' if [ -x "$HCCN" ]; then {loop}; fi; true'
    )


class HccnIp(TypedDict):
    ipaddr: str | None
    netmask: str | None


def parse_hccn_ip(lines: list[str]) -> HccnIp:
    """``ipaddr:29.1.112.213`` / ``netmask:255.255.0.0``."""
    values = _key_values(lines)
    return HccnIp(ipaddr=clean(values.get("ipaddr")), netmask=clean(values.get("netmask")))


def parse_hccn_value(lines: list[str], key: str) -> str | None:
    """The value after ``key:`` in ``hccn_tool`` output, e.g. ``link status: UP``."""
    return clean(_key_values(lines).get(key))


class HccnDeviceIps(FactBase[dict[int, HccnIp]]):
    """Each NPU's RoCE address from ``hccn_tool -i N -ip -g``.

    No ``requires_command``: the driver installs ``hccn_tool`` in
    ``/usr/local/Ascend/driver/tools``, often off the SSH PATH, so the command looks in both
    places and prints nothing (hence ``default()``) when neither has it.

    + npu_count: number of NPUs (ids ``0 .. npu_count-1``)

    .. code:: python

        {0: {"ipaddr": "29.1.112.213", "netmask": "255.255.0.0"}, ...}
    """

    def command(self, npu_count: int = 8) -> str:
        return _hccn_loop(npu_count, "-ip -g")

    @staticmethod
    def default() -> dict[int, HccnIp]:
        return {}

    def process(self, output: list[str]) -> dict[int, HccnIp]:
        return {
            npu: parse_hccn_ip(block) for npu, block in split_marked(output, _NPU_MARKER).items()
        }


class HccnLinks(FactBase[dict[int, str | None]]):
    """Each NPU port's link state from ``hccn_tool -i N -link -g`` (``UP`` / ``DOWN``).

    + npu_count: number of NPUs (ids ``0 .. npu_count-1``)

    .. code:: python

        {0: "UP", 1: "DOWN", ...}
    """

    def command(self, npu_count: int = 8) -> str:
        return _hccn_loop(npu_count, "-link -g")

    @staticmethod
    def default() -> dict[int, str | None]:
        return {}

    def process(self, output: list[str]) -> dict[int, str | None]:
        return {
            npu: parse_hccn_value(block, "link status")
            for npu, block in split_marked(output, _NPU_MARKER).items()
        }


class HccnNetHealth(FactBase[dict[int, str | None]]):
    """Each NPU's network health (``Success``, ``Fault``, ``Init`` before detection has run...)
    from ``hccn_tool -i N -net_health -g``.

    + npu_count: number of NPUs (ids ``0 .. npu_count-1``)

    .. code:: python

        {0: "Success", 1: "Fault", ...}
    """

    def command(self, npu_count: int = 8) -> str:
        return _hccn_loop(npu_count, "-net_health -g")

    @staticmethod
    def default() -> dict[int, str | None]:
        return {}

    def process(self, output: list[str]) -> dict[int, str | None]:
        return {
            npu: parse_hccn_value(block, "net health status")
            for npu, block in split_marked(output, _NPU_MARKER).items()
        }


class HccnTlsState(TypedDict):
    enabled: bool | None
    preconfigured: bool | None
    alarm_days: int | None


_TLS_SWITCH_RE = re.compile(r"tls switch\[(\d+)\]")
_TLS_PRESET_RE = re.compile(r"tls preconfigured\[(\d+)\]")
_TLS_ALARM_RE = re.compile(r"tls alarm time threshold\[(\d+)\]")


def parse_hccn_tls(lines: list[str]) -> HccnTlsState:
    """Parse ``dev_id:0, tls switch[0](0:disable, 1:enable), tls preconfigured[1](...), ...``."""
    text = " ".join(lines)
    switch = _TLS_SWITCH_RE.search(text)
    preset = _TLS_PRESET_RE.search(text)
    alarm = _TLS_ALARM_RE.search(text)
    return HccnTlsState(
        enabled=to_bool(switch.group(1)) if switch else None,
        preconfigured=to_bool(preset.group(1)) if preset else None,
        alarm_days=int(alarm.group(1)) if alarm else None,
    )


class HccnTls(FactBase[dict[int, HccnTlsState]]):
    """Each NPU's TLS switch from ``hccn_tool -i N -tls -g`` (must match across a cluster).

    + npu_count: number of NPUs (ids ``0 .. npu_count-1``)

    .. code:: python

        {0: {"enabled": False, "preconfigured": True, "alarm_days": 60}, ...}
    """

    def command(self, npu_count: int = 8) -> str:
        return _hccn_loop(npu_count, "-tls -g")

    @staticmethod
    def default() -> dict[int, HccnTlsState]:
        return {}

    def process(self, output: list[str]) -> dict[int, HccnTlsState]:
        return {
            npu: parse_hccn_tls(block) for npu, block in split_marked(output, _NPU_MARKER).items()
        }


# --------------------------------------------------------------------------------------------
# /etc/hccn.conf
# --------------------------------------------------------------------------------------------

_CONF_LINE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z_]*?)_(\d+)\s*=\s*(.*?)\s*$")


def parse_hccn_conf(lines: list[str]) -> dict[int, dict[str, str]]:
    """``address_0=29.1.137.205`` -> ``{0: {"address": "29.1.137.205"}}``; other lines ignored."""
    conf: dict[int, dict[str, str]] = {}
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        match = _CONF_LINE_RE.match(line)
        if match:
            conf.setdefault(int(match.group(2)), {})[match.group(1)] = match.group(3)
    return conf


class HccnConf(FactBase[dict[int, dict[str, str]]]):
    """``/etc/hccn.conf`` by NPU id (``address``, ``netmask``, ``netdetect``, ``gateway``,
    ``send_arp_status``, ``tls_enable``, ``arp`` ... as written); ``{}`` when the file is absent.

    + path: the file to read

    .. code:: python

        {0: {"address": "29.1.137.205", "netmask": "255.255.0.0", "netdetect": "29.1.0.1",
             "gateway": "29.1.0.1", "send_arp_status": "1"}, ...}
    """

    def command(self, path: str = "/etc/hccn.conf") -> str:
        quoted = shlex.quote(path)
        return f"if [ -f {quoted} ]; then cat {quoted}; fi"

    @staticmethod
    def default() -> dict[int, dict[str, str]]:
        return {}

    def process(self, output: list[str]) -> dict[int, dict[str, str]]:
        return parse_hccn_conf(output)
