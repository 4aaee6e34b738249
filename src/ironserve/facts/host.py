"""Host facts that accelerator serving depends on: PCI devices, memlock limit, ``/dev/shm`` size,
free disk space, clock synchronisation and IOMMU state.

.. code:: python

    host.get_fact(PciDevices)
    [{"slot": "0000:18:00.0", "class": "3D controller", "class_id": "0302",
      "vendor": "NVIDIA Corporation", "vendor_id": "10de",
      "device": "GH100 [H100 SXM5 80GB]", "device_id": "2330", "rev": "a1"}]
"""

from __future__ import annotations

import re
import shlex
from typing import Any, TypedDict

from pyinfra.api.facts import FactBase

# --------------------------------------------------------------------------------------------
# lspci
# --------------------------------------------------------------------------------------------

PciDevice = TypedDict(
    "PciDevice",
    {
        "slot": str,
        "class": str,
        "class_id": str,
        "vendor": str | None,
        "vendor_id": str,
        "device": str,
        "device_id": str,
        "rev": str | None,
    },
)

_SLOT_RE = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_ID_SUFFIX_RE = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]{4})\]$")
_HUMAN_RE = re.compile(
    r"^(?P<slot>\S+) (?P<cls>.+?) \[(?P<class_id>[0-9a-fA-F]{4})\]: (?P<rest>.*?)"
    r" \[(?P<vendor_id>[0-9a-fA-F]{4}):(?P<device_id>[0-9a-fA-F]{4})\]"
    r"(?: \(rev (?P<rev>[0-9a-fA-F]{2})\))?(?: \(prog-if .*\))?$"
)


def _full_slot(slot: str) -> str:
    return slot.lower() if slot.count(":") == 2 else f"0000:{slot.lower()}"


def _name_and_id(field: str) -> tuple[str, str]:
    match = _ID_SUFFIX_RE.match(field)
    if match:
        return match.group(1), match.group(2).lower()
    return field, ""


def _parse_lspci_machine(line: str) -> PciDevice | None:
    try:
        parts = shlex.split(line)
    except ValueError:
        return None
    if len(parts) < 4 or not _SLOT_RE.match(parts[0]):
        return None
    positional = [p for p in parts[1:] if not re.match(r"^-[rp][0-9a-fA-F]+$", p)]
    if len(positional) < 3:
        return None
    rev = next((p[2:].lower() for p in parts[1:] if re.match(r"^-r[0-9a-fA-F]+$", p)), None)
    cls, class_id = _name_and_id(positional[0])
    vendor, vendor_id = _name_and_id(positional[1])
    device, device_id = _name_and_id(positional[2])
    return PciDevice(
        {
            "slot": _full_slot(parts[0]),
            "class": cls,
            "class_id": class_id[:4],
            "vendor": vendor,
            "vendor_id": vendor_id,
            "device": device,
            "device_id": device_id,
            "rev": rev,
        }
    )


def _parse_lspci_human(line: str) -> PciDevice | None:
    match = _HUMAN_RE.match(line.strip())
    if match is None or not _SLOT_RE.match(match.group("slot")):
        return None
    return PciDevice(
        {
            "slot": _full_slot(match.group("slot")),
            "class": match.group("cls"),
            "class_id": match.group("class_id").lower(),
            # `lspci -nn` prints "<vendor> <device>" with no separator; only -mm splits them.
            "vendor": None,
            "vendor_id": match.group("vendor_id").lower(),
            "device": match.group("rest"),
            "device_id": match.group("device_id").lower(),
            "rev": match.group("rev"),
        }
    )


def parse_lspci(lines: list[str]) -> list[PciDevice]:
    """Parse ``lspci -Dnnmm`` (machine) or ``lspci -Dnn`` (human) output.

    The machine format quotes each field, so vendor and device names are separated; the human
    format (``0000:18:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB]
    [10de:2330] (rev a1)``) is accepted too, with ``vendor`` set to ``None`` and the whole name
    in ``device``. Slots without a PCI domain get ``0000:``. Other lines are skipped.
    """
    devices: list[PciDevice] = []
    for line in lines:
        if not line.strip():
            continue
        device = _parse_lspci_machine(line) if '"' in line else _parse_lspci_human(line)
        if device is not None:
            devices.append(device)
    return devices


class PciDevices(FactBase[list[PciDevice]]):
    """Every PCI function, from ``lspci -Dnnmm`` (pciutils' machine-readable format).

    + vendor_id: only list this vendor's functions, e.g. ``"10de"`` (NVIDIA) or ``"19e5"`` (Huawei)

    .. code:: python

        [{"slot": "0000:18:00.0", "class": "3D controller", "class_id": "0302",
          "vendor": "NVIDIA Corporation", "vendor_id": "10de",
          "device": "GH100 [H100 SXM5 80GB]", "device_id": "2330", "rev": "a1"}]
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "lspci"

    def command(self, vendor_id: str | None = None) -> str:
        if vendor_id is None:
            return "lspci -Dnnmm"
        if not re.fullmatch(r"[0-9a-fA-F]{4}", vendor_id):
            raise ValueError(f"vendor_id must be 4 hex digits, got {vendor_id!r}")
        return f"lspci -Dnnmm -d {vendor_id.lower()}:"

    @staticmethod
    def default() -> list[PciDevice]:
        return []

    def process(self, output: list[str]) -> list[PciDevice]:
        return parse_lspci(output)


# --------------------------------------------------------------------------------------------
# ulimit -l
# --------------------------------------------------------------------------------------------


class Memlock(TypedDict):
    unlimited: bool
    bytes: int | None


def parse_memlock(lines: list[str]) -> Memlock | None:
    """``ulimit -l`` prints ``unlimited`` or a size in KiB."""
    for line in lines:
        value = line.strip()
        if value == "unlimited":
            return Memlock(unlimited=True, bytes=None)
        if value.isdigit():
            return Memlock(unlimited=False, bytes=int(value) * 1024)
    return None


class MemlockLimit(FactBase[Memlock | None]):
    """The locked-memory limit of a login shell on the node (``ulimit -l``).

    RDMA registers pinned memory, so NCCL over InfiniBand/RoCE wants ``unlimited``. Containers
    get their own limit from ``--ulimit memlock=-1`` or dockerd's ``LimitMEMLOCK``; this fact is
    the host shell's value.

    .. code:: python

        {"unlimited": False, "bytes": 8388608}
    """

    def command(self) -> str:
        return "ulimit -l"

    @staticmethod
    def default() -> Memlock | None:
        return None

    def process(self, output: list[str]) -> Memlock | None:
        return parse_memlock(output)


# --------------------------------------------------------------------------------------------
# df
# --------------------------------------------------------------------------------------------


class DfEntry(TypedDict):
    filesystem: str
    size_bytes: int
    used_bytes: int
    available_bytes: int
    mount: str


def parse_df(lines: list[str]) -> DfEntry | None:
    """The last data row of ``df -P -B1 PATH`` (POSIX format, one line per filesystem)."""
    entry: DfEntry | None = None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and all(f.isdigit() for f in fields[1:4]):
            entry = DfEntry(
                filesystem=fields[0],
                size_bytes=int(fields[1]),
                used_bytes=int(fields[2]),
                available_bytes=int(fields[3]),
                mount=" ".join(fields[5:]),
            )
    return entry


class ShmSize(FactBase[DfEntry | None]):
    """Size and use of ``/dev/shm`` from ``df -P -B1 /dev/shm``; ``None`` when it is absent.

    .. code:: python

        {"filesystem": "tmpfs", "size_bytes": 67108864, "used_bytes": 0,
         "available_bytes": 67108864, "mount": "/dev/shm"}
    """

    def command(self) -> str:
        return "df -P -B1 /dev/shm 2>/dev/null || true"

    @staticmethod
    def default() -> DfEntry | None:
        return None

    def process(self, output: list[str]) -> DfEntry | None:
        return parse_df(output)


class FreeDiskBytes(FactBase[int | None]):
    """Bytes available to unprivileged users on the filesystem that holds ``path``.

    + path: a file or directory; when it does not exist yet, its nearest existing parent is
      measured (the filesystem the directory will be created on)

    .. code:: python

        1979120451584
    """

    def command(self, path: str) -> str:
        return (
            f'p={shlex.quote(path)}; while [ ! -e "$p" ] && [ "$p" != / ]'
            ' && [ "$p" != . ]; do p=$(dirname "$p"); done;'
            ' df -P -B1 "$p" 2>/dev/null || true'
        )

    @staticmethod
    def default() -> int | None:
        return None

    def process(self, output: list[str]) -> int | None:
        entry = parse_df(output)
        return entry["available_bytes"] if entry else None


class DirBytes(FactBase[int]):
    """Bytes under a folder (``du -sb``); 0 when it does not exist (what the weights folder
    already holds, for ironserve.rules.disk).

    .. code:: python

        17179869184
    """

    def command(self, path: str) -> str:
        return f"du -sb {shlex.quote(path)} 2>/dev/null | cut -f1; true"

    @staticmethod
    def default() -> int:
        return 0

    def process(self, output: list[str]) -> int:
        text = "".join(output).strip()
        return int(text) if text.isdigit() else 0


# --------------------------------------------------------------------------------------------
# Time synchronisation
# --------------------------------------------------------------------------------------------


class TimeSyncState(TypedDict):
    synchronized: bool | None
    source: str | None
    detail: str | None


def parse_time_sync(lines: list[str]) -> TimeSyncState | None:
    """Parse ``timedatectl: yes|no`` or ``chronyc:`` + ``chronyc tracking`` output."""
    for number, line in enumerate(lines):
        if line.startswith("timedatectl:"):
            value = line.split(":", 1)[1].strip().lower()
            synced = {"yes": True, "no": False}.get(value)
            return TimeSyncState(synchronized=synced, source="timedatectl", detail=value or None)
        if line.startswith("chronyc:"):
            fields: dict[str, str] = {}
            for row in lines[number + 1 :]:
                key, sep, value = row.partition(":")
                if sep:
                    fields[key.strip()] = value.strip()
            leap = fields.get("Leap status")
            synced = None if leap is None else leap == "Normal"
            detail = fields.get("Reference ID") or (lines[number + 1].strip() or None)
            return TimeSyncState(synchronized=synced, source="chronyc", detail=detail)
    return None


class TimeSync(FactBase[TimeSyncState | None]):
    """Whether the clock is NTP-synchronised (Ray, NCCL timeouts and TLS all want it).

    Asks ``timedatectl show -p NTPSynchronized --value``; where there is no systemd (containers)
    falls back to ``chronyc tracking``'s ``Leap status``. ``None`` when neither tool answers.

    .. code:: python

        {"synchronized": True, "source": "timedatectl", "detail": "yes"}
    """

    def command(self) -> str:
        return (
            "if command -v timedatectl >/dev/null 2>&1"
            " && v=$(timedatectl show -p NTPSynchronized --value 2>/dev/null)"
            ' && [ -n "$v" ]; then echo "timedatectl: $v";'
            " elif command -v chronyc >/dev/null 2>&1; then echo 'chronyc:';"
            " chronyc tracking 2>&1; fi; true"
        )

    @staticmethod
    def default() -> TimeSyncState | None:
        return None

    def process(self, output: list[str]) -> TimeSyncState | None:
        return parse_time_sync(output)


# --------------------------------------------------------------------------------------------
# IOMMU
# --------------------------------------------------------------------------------------------


class IommuState(TypedDict):
    enabled: bool
    passthrough: bool
    cmdline_flags: list[str]
    sysfs_units: int
    vastai_warning: bool
    dmesg: list[str]


_IOMMU_FLAG_RE = re.compile(r"^(intel_iommu|amd_iommu|iommu|iommu\.passthrough|iommu\.strict)=")
_IOMMU_OFF = frozenset({"intel_iommu=off", "amd_iommu=off", "iommu=off"})
_IOMMU_ON = frozenset({"intel_iommu=on", "amd_iommu=on", "iommu=pt", "iommu=on", "iommu=force"})
# Kernel log lines of an IOMMU the kernel turned on: Intel VT-d ("DMAR: IOMMU enabled") and AMD
# ("AMD-Vi: Found IOMMU ...", "AMD-Vi: Interrupt remapping enabled", ...); not the AMD-Vi lines of
# a machine without one ("... not available on this system", "... disabled").
_IOMMU_DMESG_RE = re.compile(r"DMAR: IOMMU enabled|AMD-Vi:")
_IOMMU_DMESG_NOT = re.compile(r"not available|not found|disabled|unable|fail|error", re.IGNORECASE)


def parse_iommu(lines: list[str]) -> IommuState:
    """Parse the ``## cmdline`` / ``## units`` / ``## vastai`` / ``## dmesg`` sections printed by
    IommuEnabled (the kernel log lines follow ``## dmesg``)."""
    cmdline = ""
    units = 0
    vastai = 0
    dmesg: list[str] = []
    in_dmesg = False
    for line in lines:
        if line.startswith("## "):
            in_dmesg = line.strip() == "## dmesg"
        elif in_dmesg:
            if _IOMMU_DMESG_RE.search(line) and not _IOMMU_DMESG_NOT.search(line):
                dmesg.append(line.strip())
            continue
        if line.startswith("## cmdline"):
            cmdline = line[len("## cmdline") :].strip()
        elif line.startswith("## units"):
            value = line[len("## units") :].strip()
            units = int(value) if value.isdigit() else 0
        elif line.startswith("## vastai"):
            value = line[len("## vastai") :].strip()
            vastai = int(value) if value.isdigit() else 0
    flags = [token for token in cmdline.split() if _IOMMU_FLAG_RE.match(token)]
    disabled = any(flag in _IOMMU_OFF for flag in flags)
    passthrough = "iommu=pt" in flags or "iommu.passthrough=1" in flags
    asked = any(flag in _IOMMU_ON for flag in flags)
    return IommuState(
        # What the kernel or the driver logged wins over the command line (it did turn it on).
        enabled=vastai > 0 or bool(dmesg) or ((units > 0 or asked) and not disabled),
        passthrough=passthrough,
        cmdline_flags=flags,
        sysfs_units=units,
        vastai_warning=vastai > 0,
        dmesg=dmesg,
    )


class IommuEnabled(FactBase[IommuState | None]):
    """Whether an IOMMU translates DMA on the node.

    Sources: IOMMU units registered under ``/sys/class/iommu`` (the kernel's own view), the
    kernel command line flags (``intel_iommu=on``, ``amd_iommu=on``, ``iommu=pt``... turn it on,
    ``*=off`` off), the kernel log's ``DMAR: IOMMU enabled`` (Intel) and ``AMD-Vi:`` lines (before
    any Vastai driver ran), and the Vastai driver's ``iommu is enable`` line (VA16 cards refuse to
    run with an IOMMU on; reading dmesg needs root where ``dmesg_restrict=1``).

    .. code:: python

        {"enabled": True, "passthrough": True, "cmdline_flags": ["intel_iommu=on", "iommu=pt"],
         "sysfs_units": 8, "vastai_warning": False, "dmesg": ["[0.012345] DMAR: IOMMU enabled"]}
    """

    def command(self) -> str:
        return (
            'echo "## cmdline $(cat /proc/cmdline 2>/dev/null)";'
            ' echo "## units $(ls /sys/class/iommu 2>/dev/null | wc -l)";'
            " echo \"## vastai $(dmesg 2>/dev/null | grep -c 'iommu is enable')\";"
            " echo '## dmesg';"
            " dmesg 2>/dev/null | grep -E 'DMAR: IOMMU enabled|AMD-Vi:' | head -n 20;"
            " true"
        )

    @staticmethod
    def default() -> IommuState | None:
        return None

    def process(self, output: list[str]) -> IommuState | None:
        return parse_iommu(output)
