"""NVIDIA GPU facts: per-GPU state from ``nvidia-smi --query-gpu``, the driver and CUDA versions
from the ``nvidia-smi`` header, NVSwitch presence, and recent Xid events from the kernel log.

.. code:: python

    host.get_fact(NvidiaGpus)
    [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...",
      "pci_bus_id": "00000000:19:00.0", "memory_total_mib": 81559, "driver_version": "550.90.07",
      "persistence_mode": True, "ecc_uncorrected_volatile": 0, "retired_pages_pending": False,
      "remapped_rows_pending": False, "remapped_rows_uncorrectable": 0,
      "pcie_link_width_current": 16, "pcie_link_width_max": 16,
      "clocks_event_reasons_active": 1, "fabric_state": "Completed"}]
"""

from __future__ import annotations

import csv
import re
import shlex
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict

from pyinfra.api.facts import FactBase

from ironserve.facts._parse import clean, to_bool, to_int
from ironserve.facts.host import parse_lspci

# --------------------------------------------------------------------------------------------
# nvidia-smi --query-gpu
# --------------------------------------------------------------------------------------------

#: The fields NvidiaGpus asks for (driver >= 535 names).
NVIDIA_GPU_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "memory.total",
    "driver_version",
    "persistence_mode",
    "ecc.errors.uncorrected.volatile.total",
    "retired_pages.pending",
    "remapped_rows.pending",
    "remapped_rows.uncorrectable",
    "pcie.link.width.current",
    "pcie.link.width.max",
    "clocks_event_reasons.active",
    "fabric.state",
)

#: Fallback for older drivers: no ``fabric.state``, the pre-535 ``clocks_throttle_reasons`` name.
NVIDIA_GPU_FIELDS_LEGACY: tuple[str, ...] = tuple(
    "clocks_throttle_reasons.active" if f == "clocks_event_reasons.active" else f
    for f in NVIDIA_GPU_FIELDS
    if f != "fabric.state"
)

_FIELD_NAME_RE = re.compile(r"^[a-z][A-Za-z0-9_.]*$")
_UNIT_SUFFIX_RE = re.compile(r"\s*\[[^\]]*\]$")


class NvidiaGpu(TypedDict):
    index: int
    name: str | None
    uuid: str | None
    pci_bus_id: str | None
    memory_total_mib: int | None
    driver_version: str | None
    persistence_mode: bool | None
    ecc_uncorrected_volatile: int | None
    retired_pages_pending: bool | None
    remapped_rows_pending: bool | None
    remapped_rows_uncorrectable: int | None
    pcie_link_width_current: int | None
    pcie_link_width_max: int | None
    clocks_event_reasons_active: int | None
    fabric_state: str | None


def _split_csv_line(line: str) -> list[str]:
    return [cell.strip() for cell in next(csv.reader([line], skipinitialspace=True), [])]


def _header_names(cells: list[str], fields: tuple[str, ...] | list[str]) -> list[str] | None:
    """The field names if ``cells`` is a ``--format=csv`` header row (units stripped), else None."""
    names = [_UNIT_SUFFIX_RE.sub("", cell) for cell in cells]
    if all(_FIELD_NAME_RE.match(name) for name in names) and set(names) & set(fields):
        return names
    return None


def parse_query_csv(
    lines: list[str], fields: tuple[str, ...] | list[str]
) -> list[dict[str, str | None]]:
    """Parse ``nvidia-smi --query-*`` CSV output into one dict per row, keyed by field name.

    Works with and without the header row and with and without units: a header row (as printed
    by ``--format=csv`` / ``csv,nounits``) names the columns and replaces ``fields``; rows after
    the last header are data. Cells such as ``[N/A]``, ``[Not Supported]``, ``N/A`` or
    ``[Requested functionality has been deprecated]`` become ``None``. Lines whose cell count
    does not match the columns (error messages, shell prompts) are skipped.
    """
    columns = list(fields)
    rows: list[dict[str, str | None]] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        cells = _split_csv_line(line)
        header = _header_names(cells, fields)
        if header is not None:
            columns = header
            rows = []
            continue
        if len(cells) != len(columns):
            continue
        rows.append({name: clean(cell) for name, cell in zip(columns, cells, strict=True)})
    return rows


def gpu_from_row(row: dict[str, str | None], position: int = 0) -> NvidiaGpu:
    """Type one :func:`parse_query_csv` row; fields that were not queried become ``None``."""
    index = to_int(row.get("index"))
    clocks = row.get("clocks_event_reasons.active") or row.get("clocks_throttle_reasons.active")
    return NvidiaGpu(
        index=position if index is None else index,
        name=row.get("name"),
        uuid=row.get("uuid"),
        pci_bus_id=row.get("pci.bus_id"),
        memory_total_mib=to_int(row.get("memory.total")),
        driver_version=row.get("driver_version"),
        persistence_mode=to_bool(row.get("persistence_mode")),
        ecc_uncorrected_volatile=to_int(row.get("ecc.errors.uncorrected.volatile.total")),
        retired_pages_pending=to_bool(row.get("retired_pages.pending")),
        remapped_rows_pending=to_bool(row.get("remapped_rows.pending")),
        remapped_rows_uncorrectable=to_int(row.get("remapped_rows.uncorrectable")),
        pcie_link_width_current=to_int(row.get("pcie.link.width.current")),
        pcie_link_width_max=to_int(row.get("pcie.link.width.max")),
        clocks_event_reasons_active=to_int(clocks),
        fabric_state=row.get("fabric.state"),
    )


def parse_nvidia_gpus(lines: list[str]) -> list[NvidiaGpu]:
    rows = parse_query_csv(lines, NVIDIA_GPU_FIELDS)
    return [gpu_from_row(row, position) for position, row in enumerate(rows)]


def _query_command(fields: tuple[str, ...]) -> str:
    return f"nvidia-smi --query-gpu={','.join(fields)} --format=csv,nounits"


class NvidiaGpus(FactBase[list[NvidiaGpu]]):
    """One entry per GPU from ``nvidia-smi --query-gpu=... --format=csv,nounits``.

    The header row is kept so that the fallback field set (drivers older than 535, which lack
    ``fabric.state`` and name ``clocks_throttle_reasons.active``) parses by column name. A driver
    that cannot be reached (``NVIDIA-SMI has failed ...``) yields ``[]``; see
    :class:`NvidiaDriver` for the error text.

    .. code:: python

        [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...",
          "pci_bus_id": "00000000:19:00.0", "memory_total_mib": 81559,
          "driver_version": "550.90.07", "persistence_mode": True, "ecc_uncorrected_volatile": 0,
          "retired_pages_pending": False, "remapped_rows_pending": False,
          "remapped_rows_uncorrectable": 0, "pcie_link_width_current": 16,
          "pcie_link_width_max": 16, "clocks_event_reasons_active": 1,
          "fabric_state": "Completed"}]
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        return (
            f"{_query_command(NVIDIA_GPU_FIELDS)} 2>&1"
            f" || {_query_command(NVIDIA_GPU_FIELDS_LEGACY)} 2>&1 || true"
        )

    @staticmethod
    def default() -> list[NvidiaGpu]:
        return []

    def process(self, output: list[str]) -> list[NvidiaGpu]:
        return parse_nvidia_gpus(output)


# --------------------------------------------------------------------------------------------
# nvidia-smi header / table: driver and CUDA versions
# --------------------------------------------------------------------------------------------


class SmiTableGpu(TypedDict):
    index: int
    name: str
    persistence_mode: bool | None
    bus_id: str
    ecc_uncorrected_volatile: int | None
    temperature_c: int | None
    power_draw_w: int | None
    power_cap_w: int | None
    memory_used_mib: int | None
    memory_total_mib: int | None
    mig_mode: str | None


class NvidiaDriverInfo(TypedDict):
    smi_version: str | None
    driver_version: str | None
    cuda_version: str | None
    gpus: list[SmiTableGpu]
    error: str | None


_SMI_VERSION_RE = re.compile(r"NVIDIA-SMI\s+(\d[\w.]*)")
_DRIVER_RE = re.compile(r"Driver Version\s*:\s*(\d[\w.]*)")
_CUDA_RE = re.compile(r"CUDA Version\s*:\s*(\d[\w.]*)")
_TABLE_GPU_RE = re.compile(r"^\s*(\d+)\s+(.+?)\s+(On|Off)\s*$")
_TABLE_BUS_RE = re.compile(r"([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])")
_TABLE_MEM_RE = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")
_TABLE_TEMP_RE = re.compile(r"(\d+)C\b")
_TABLE_POWER_RE = re.compile(r"(\d+)W\s*/\s*(\d+)W")


def parse_nvidia_smi_table(lines: list[str]) -> NvidiaDriverInfo:
    """Parse the default ``nvidia-smi`` table (or ``nvidia-smi -q``) for versions and GPU rows.

    Handles the <=525 layout, the 535-560 layout and the 590 header without the ``|---|`` row.
    When no driver version is found, ``error`` holds the first non-empty line of the output
    (e.g. ``NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver...``).
    """
    text = "\n".join(lines)
    smi = _SMI_VERSION_RE.search(text)
    driver = _DRIVER_RE.search(text)
    cuda = _CUDA_RE.search(text)
    gpus: list[SmiTableGpu] = []
    current: SmiTableGpu | None = None
    row_in_block = 0
    for line in lines:
        stripped = line.strip()
        if "Processes:" in stripped:
            break
        if not stripped.startswith("|"):
            current = None
            continue
        cells = stripped.strip("|").split("|")
        if len(cells) != 3:
            current = None if stripped.startswith("|=") else current
            continue
        head = _TABLE_GPU_RE.match(cells[0])
        bus = _TABLE_BUS_RE.search(cells[1])
        if head and bus:
            current = SmiTableGpu(
                index=int(head.group(1)),
                name=head.group(2),
                persistence_mode=head.group(3) == "On",
                bus_id=bus.group(1),
                ecc_uncorrected_volatile=to_int(cells[2]),
                temperature_c=None,
                power_draw_w=None,
                power_cap_w=None,
                memory_used_mib=None,
                memory_total_mib=None,
                mig_mode=None,
            )
            gpus.append(current)
            row_in_block = 1
            continue
        if current is None:
            continue
        if row_in_block == 1:
            memory = _TABLE_MEM_RE.search(cells[1])
            temp = _TABLE_TEMP_RE.search(cells[0])
            power = _TABLE_POWER_RE.search(cells[0])
            if memory:
                current["memory_used_mib"] = int(memory.group(1))
                current["memory_total_mib"] = int(memory.group(2))
            if temp:
                current["temperature_c"] = int(temp.group(1))
            if power:
                current["power_draw_w"] = int(power.group(1))
                current["power_cap_w"] = int(power.group(2))
        elif row_in_block == 2:
            current["mig_mode"] = clean(cells[2])
        row_in_block += 1
    error = None
    if driver is None:
        error = next((line.strip() for line in lines if line.strip()), None)
    return NvidiaDriverInfo(
        smi_version=smi.group(1) if smi else None,
        driver_version=driver.group(1) if driver else None,
        cuda_version=cuda.group(1) if cuda else None,
        gpus=gpus,
        error=error,
    )


class NvidiaDriver(FactBase[NvidiaDriverInfo | None]):
    """Driver and CUDA versions (and the GPU rows) from the plain ``nvidia-smi`` table.

    The header line ``| NVIDIA-SMI x  Driver Version: x  CUDA Version: y |`` is printed by every
    driver branch, and is the one place that shows the CUDA version the driver supports. When
    the driver is not loaded the command still succeeds and ``error`` carries nvidia-smi's
    message, so a role can tell "no driver yet" from "no nvidia-smi" (``default()``: ``None``).

    .. code:: python

        {"smi_version": "550.90.07", "driver_version": "550.90.07", "cuda_version": "12.4",
         "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "persistence_mode": True,
                   "bus_id": "00000000:19:00.0", "ecc_uncorrected_volatile": 0,
                   "temperature_c": 27, "power_draw_w": 72, "power_cap_w": 700,
                   "memory_used_mib": 1, "memory_total_mib": 81559, "mig_mode": "Disabled"}],
         "error": None}
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        return "nvidia-smi 2>&1 || true"

    @staticmethod
    def default() -> NvidiaDriverInfo | None:
        return None

    def process(self, output: list[str]) -> NvidiaDriverInfo:
        return parse_nvidia_smi_table(output)


# --------------------------------------------------------------------------------------------
# NVSwitch presence
# --------------------------------------------------------------------------------------------

NVSWITCH_PROC_DIR = "/proc/driver/nvidia-nvswitch/devices"


class NvSwitchProbe(TypedDict):
    proc_devices: list[str]
    pci_bridges: list[str]


def parse_nvswitch_probe(lines: list[str]) -> NvSwitchProbe:
    """Parse the ``## proc`` / ``## lspci`` sections printed by :class:`NvSwitchPresent`.

    ``pci_bridges`` are the slots of NVIDIA (``10de``) functions of PCI class ``0680`` (other
    bridge), which is how NVSwitches enumerate on HGX boards.
    """
    section = ""
    proc: list[str] = []
    lspci: list[str] = []
    for line in lines:
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if section == "proc" and line.strip():
            proc.append(line.strip())
        elif section == "lspci":
            lspci.append(line)
    bridges = [
        dev["slot"]
        for dev in parse_lspci(lspci)
        if dev["vendor_id"] == "10de" and dev["class_id"] == "0680"
    ]
    return NvSwitchProbe(proc_devices=proc, pci_bridges=bridges)


class NvSwitchPresent(FactBase[bool]):
    """``True`` when the node has NVSwitches (so it needs nvidia-fabricmanager).

    Two independent probes, either is enough: a non-empty
    ``/proc/driver/nvidia-nvswitch/devices/`` (needs the driver) or NVIDIA PCI functions of class
    ``0680`` in ``lspci`` (works before the driver is installed). Use
    :func:`parse_nvswitch_probe` on the raw output for the counts.
    """

    def command(self) -> str:
        return (
            f"echo '## proc'; ls -1 {NVSWITCH_PROC_DIR} 2>/dev/null;"
            " echo '## lspci'; if command -v lspci >/dev/null 2>&1;"
            " then lspci -Dnnmm -d 10de: 2>/dev/null; fi; true"
        )

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        probe = parse_nvswitch_probe(output)
        return bool(probe["proc_devices"] or probe["pci_bridges"])


# --------------------------------------------------------------------------------------------
# Xid events from the kernel log
# --------------------------------------------------------------------------------------------


class XidEvent(TypedDict):
    kind: Literal["xid", "sxid"]
    pci: str
    xid: int
    message: str
    pid: int | None
    process: str | None
    time: str | None
    uptime_s: float | None


_XID_RE = re.compile(r"NVRM: Xid \(PCI:([0-9A-Fa-f:.]+)\): (\d+),\s*(.*)$")
_SXID_RE = re.compile(r"nvidia-nvswitch\d*: SXid \(PCI:([0-9A-Fa-f:.]+)\): (\d+),\s*(.*)$")
_XID_REST_RE = re.compile(r"^(?:pid=([^,]*),\s*)?(?:name=([^,]*),\s*)?(.*)$")
_FALLEN_START_RE = re.compile(r"NVRM: The NVIDIA GPU ([0-9A-Fa-f:.]+)\s*$")
_ISO_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[,.](\d+))?([+-]\d{2}:?\d{2}|Z)?")
_CTIME_RE = re.compile(r"^\[([A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4})\]")
_UPTIME_RE = re.compile(r"^\[\s*(\d+\.\d+)\]")
_CUTOFF_PREFIX = "## cutoff "


def _line_time(line: str, prefix: str) -> tuple[str | None, float | None]:
    """The timestamp that precedes the kernel message, as ISO 8601 when it has a date."""
    ctime = _CTIME_RE.match(line)
    if ctime:
        parsed = datetime.strptime(" ".join(ctime.group(1).split()), "%a %b %d %H:%M:%S %Y")
        return parsed.isoformat(), None
    uptime = _UPTIME_RE.match(line)
    if uptime:
        return None, float(uptime.group(1))
    iso = _ISO_RE.search(prefix)
    if iso:
        date, fraction, zone = iso.groups()
        text = date + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")
        if zone:
            text += "+00:00" if zone == "Z" else f"{zone[:3]}:{zone[-2:]}"
        return text, None
    return None, None


def parse_xid_lines(lines: list[str]) -> list[XidEvent]:
    """Parse kernel log lines into Xid / SXid events.

    Understands plain ``dmesg`` (``[6781741.548779] NVRM: Xid ...``), ``dmesg -T``,
    ``dmesg --time-format=iso`` (with or without ``--decode`` facility prefixes), journalctl
    ``short-iso`` lines, the short form without ``pid=``/``name=``, NVSwitch ``SXid`` lines, and
    the 570+ multi-line "The NVIDIA GPU ... has fallen off the bus" message that carries no Xid
    number (reported as Xid 79, as the driver team recommends).
    """
    events: list[XidEvent] = []
    pending_fallen: tuple[str, str | None, float | None, int] | None = None
    for number, line in enumerate(lines):
        match = _XID_RE.search(line)
        kind: Literal["xid", "sxid"] = "xid"
        if match is None:
            match = _SXID_RE.search(line)
            kind = "sxid"
        if match:
            time, uptime = _line_time(line, line[: match.start()])
            rest = _XID_REST_RE.match(match.group(3))
            pid = process = None
            message = match.group(3).strip()
            if rest and kind == "xid":
                pid = rest.group(1).strip("'") if rest.group(1) else None
                process = rest.group(2) if rest.group(2) else None
                message = rest.group(3).strip()
            events.append(
                XidEvent(
                    kind=kind,
                    pci=match.group(1),
                    xid=int(match.group(2)),
                    message=message,
                    pid=int(pid) if pid and pid.isdigit() else None,
                    process=None if process in (None, "<unknown>") else process,
                    time=time,
                    uptime_s=uptime,
                )
            )
            continue
        fallen = _FALLEN_START_RE.search(line)
        if fallen:
            time, uptime = _line_time(line, line[: fallen.start()])
            pending_fallen = (fallen.group(1), time, uptime, number)
            continue
        if pending_fallen and "fallen off the bus" in line and number - pending_fallen[3] <= 3:
            pci, time, uptime, _ = pending_fallen
            events.append(
                XidEvent(
                    kind="xid",
                    pci=pci,
                    xid=79,
                    message="GPU has fallen off the bus (reported without an Xid line)",
                    pid=None,
                    process=None,
                    time=time,
                    uptime_s=uptime,
                )
            )
            pending_fallen = None
    return events


def _parse_cutoff(lines: list[str]) -> datetime | None:
    for line in lines:
        if line.startswith(_CUTOFF_PREFIX):
            value = line[len(_CUTOFF_PREFIX) :].strip()
            if value.isdigit():
                return datetime.fromtimestamp(int(value), tz=timezone.utc)
    return None


def filter_since(events: list[XidEvent], cutoff: datetime | None) -> list[XidEvent]:
    """Drop events with a zoned ISO time before ``cutoff``; keep events whose age is unknown."""
    if cutoff is None:
        return events
    kept = []
    for event in events:
        if event["time"]:
            stamp = datetime.fromisoformat(event["time"])
            if stamp.tzinfo is not None and stamp < cutoff:
                continue
        kept.append(event)
    return kept


_KERNEL_PATTERN = "'NVRM: Xid|SXid|NVRM: The NVIDIA GPU|fallen off the bus'"


class NvidiaXidEvents(FactBase[list[XidEvent]]):
    """Xid (GPU) and SXid (NVSwitch) events logged by the kernel since ``since``.

    + since: a ``journalctl --since`` / ``date -d`` expression, e.g. ``"1 hour ago"``

    Reads ``journalctl -k --since`` when a journal is readable, else
    ``dmesg --time-format=iso``; the node prints its own cutoff (``date -d``) so that dmesg
    lines are filtered by the same window. dmesg needs root where ``dmesg_restrict=1``.

    .. code:: python

        [{"kind": "xid", "pci": "0000:19:00", "xid": 48, "pid": None, "process": None,
          "message": "An uncorrectable double bit error (DBE) has been detected ...",
          "time": "2024-11-15T12:02:03.470068+00:00", "uptime_s": None}]
    """

    def command(self, since: str = "1 hour ago") -> str:
        quoted = shlex.quote(since)
        return (
            f'echo "{_CUTOFF_PREFIX}$(date -u -d {quoted} +%s 2>/dev/null)";'
            " if command -v journalctl >/dev/null 2>&1"
            " && journalctl -k -n 1 -q --no-pager >/dev/null 2>&1; then"
            f" journalctl -k -q --no-pager -o short-iso --since {quoted} 2>/dev/null"
            f" | grep -E {_KERNEL_PATTERN};"
            f" else dmesg --time-format=iso 2>/dev/null | grep -E {_KERNEL_PATTERN}; fi; true"
        )

    @staticmethod
    def default() -> list[XidEvent]:
        return []

    def process(self, output: list[str]) -> list[XidEvent]:
        return filter_since(parse_xid_lines(output), _parse_cutoff(output))
