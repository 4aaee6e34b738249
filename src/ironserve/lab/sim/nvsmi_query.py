"""`nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` field table.

Field names, header units and value formats follow the driver-590 capture (nvidia.md 2a,
212 fields); values that are per-GPU come from the node's hardware.json and faults.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
Getter = Callable[[JSON, JSON], str]

NA = "[N/A]"
DEPRECATED = "[Requested functionality has been deprecated]"


def _const(value: str) -> Getter:
    return lambda g, ctx: value


def _key(name: str, suffix: str = "") -> Getter:
    return lambda g, ctx: f"{g[name]}{suffix}"


def _mib(fn: Callable[[JSON], int]) -> Getter:
    return lambda g, ctx: f"{fn(g)} MiB"


def _watts(fn: Callable[[JSON], float]) -> Getter:
    return lambda g, ctx: f"{fn(g):.2f} W"


def _mhz(fn: Callable[[JSON], int]) -> Getter:
    return lambda g, ctx: f"{fn(g)} MHz"


def _ecc_unc(g: JSON, ctx: JSON) -> str:
    return str(g["ecc_uncorrected"])


def _fabric(i: int) -> Getter:
    def get(g: JSON, ctx: JSON) -> str:
        value: str = g["fabric"][i]
        return NA if value == "N/A" else value

    return get


def _pcie_hostmax(g: JSON, ctx: JSON) -> str:
    return str(g["pcie_gen"])


# (name, header unit) -> getter; order is irrelevant, the user's order is kept.
FIELDS: dict[str, tuple[str, Getter]] = {
    "timestamp": ("", lambda g, ctx: ctx["timestamp"]),
    "driver_version": ("", lambda g, ctx: ctx["driver"]),
    "vgpu_driver_capability.heterogenous_multivGPU": ("", _const(NA)),
    "count": ("", lambda g, ctx: str(ctx["count"])),
    "name": ("", _key("name")),
    "serial": ("", _key("serial")),
    "uuid": ("", _key("uuid")),
    "pci.bus_id": ("", _key("pci_bus_id")),
    "pci.domain": ("", _const("0x0000")),
    "pci.bus": ("", lambda g, ctx: f"0x{g['pci_bus']:02X}"),
    "pci.device": ("", _const("0x00")),
    "pci.baseClass": ("", _const("0x3")),
    "pci.subClass": ("", _const("0x2")),
    "pci.device_id": ("", _key("pci_device_id")),
    "pci.sub_device_id": ("", _key("pci_sub_system_id")),
    "vgpu_device_capability.fractional_multiVgpu": ("", _const(NA)),
    "vgpu_device_capability.heterogeneous_timeSlice_profile": ("", _const(NA)),
    "vgpu_device_capability.heterogeneous_timeSlice_sizes": ("", _const(NA)),
    "vgpu_device_capability.homogeneous_placements": ("", _const(NA)),
    "vgpu_device_capability.mig_timeSlicing": ("", _const(NA)),
    "vgpu_device_capability.mig_timeSlicing_mode": ("", _const(NA)),
    "pcie.link.gen.current": ("", _key("pcie_gen")),
    "pcie.link.gen.gpucurrent": ("", _key("pcie_gen")),
    "pcie.link.gen.max": ("", _key("pcie_gen")),
    "pcie.link.gen.gpumax": ("", _key("pcie_gen")),
    "pcie.link.gen.hostmax": ("", _pcie_hostmax),
    "pcie.link.width.current": ("", _key("pcie_width")),
    "pcie.link.width.max": ("", _key("pcie_width")),
    "index": ("", _key("index")),
    "display_mode": ("", _const(DEPRECATED)),
    "display_attached": ("", _const("Yes")),
    "display_active": ("", _const("Disabled")),
    "persistence_mode": ("", lambda g, ctx: "Enabled" if g["persistence"] else "Disabled"),
    "addressing_mode": ("", _const("None")),
    "accounting.mode": ("", _const("Disabled")),
    "accounting.buffer_size": ("", _const("4000")),
    "driver_model.current": ("", _const(NA)),
    "driver_model.pending": ("", _const(NA)),
    "vbios_version": ("", _key("vbios")),
    "inforom.img": ("", lambda g, ctx: g["inforom"][0]),
    "inforom.oem": ("", lambda g, ctx: g["inforom"][1]),
    "inforom.ecc": ("", lambda g, ctx: g["inforom"][2]),
    "inforom.pwr": ("", _const(NA)),
    "inforom.checksum_validation": ("", _const("valid")),
    "gpu_recovery_action": ("", lambda g, ctx: "Reset" if g["remap_pending"] else "None"),
    "gom.current": ("", _const(NA)),
    "gom.pending": ("", _const(NA)),
    "fan.speed": ("%", _const(NA)),
    "pstate": ("", _const("P0")),
    "clocks_event_reasons.supported": ("", _const("0x00000000000001FF")),
    "clocks_event_reasons.active": ("", _const("0x0000000000000001")),
    "clocks_event_reasons.gpu_idle": ("", _const("Active")),
    "clocks_event_reasons.applications_clocks_setting": ("", _const("Not Active")),
    "clocks_event_reasons.sw_power_cap": ("", _const("Not Active")),
    "clocks_event_reasons.hw_slowdown": ("", _const("Not Active")),
    "clocks_event_reasons.hw_thermal_slowdown": ("", _const("Not Active")),
    "clocks_event_reasons.hw_power_brake_slowdown": ("", _const("Not Active")),
    "clocks_event_reasons.sw_thermal_slowdown": ("", _const("Not Active")),
    "clocks_event_reasons.sync_boost": ("", _const("Not Active")),
    "clocks_event_reasons_counters.sw_power_cap": ("us", _const("0 us")),
    "clocks_event_reasons_counters.sync_boost": ("us", _const("0 us")),
    "clocks_event_reasons_counters.sw_thermal_slowdown": ("us", _const("0 us")),
    "clocks_event_reasons_counters.hw_thermal_slowdown": ("us", _const("0 us")),
    "clocks_event_reasons_counters.hw_power_brake_slowdown": ("us", _const("0 us")),
    "memory.total": ("MiB", _mib(lambda g: int(g["memory_mib"]))),
    "memory.reserved": ("MiB", _mib(lambda g: int(g["reserved_mib"]))),
    "memory.used": ("MiB", _mib(lambda g: 0)),
    "memory.free": ("MiB", _mib(lambda g: int(g["memory_mib"]) - int(g["reserved_mib"]))),
    "compute_mode": ("", _const("Default")),
    "compute_cap": ("", _key("compute_cap")),
    "utilization.gpu": ("%", _const("0 %")),
    "utilization.memory": ("%", _const("0 %")),
    "utilization.encoder": ("%", _const("0 %")),
    "utilization.decoder": ("%", _const("0 %")),
    "utilization.jpeg": ("%", _const("0 %")),
    "utilization.ofa": ("%", _const("0 %")),
    "encoder.stats.sessionCount": ("", _const("0")),
    "encoder.stats.averageFps": ("", _const("0")),
    "encoder.stats.averageLatency": ("", _const("0")),
    "dramEncryption.mode.current": ("", _const(NA)),
    "dramEncryption.mode.pending": ("", _const(NA)),
    "ecc.mode.current": ("", _const("Enabled")),
    "ecc.mode.pending": ("", _const("Enabled")),
    "retired_pages.single_bit_ecc.count": ("", _const(NA)),
    "retired_pages.double_bit.count": ("", _const(NA)),
    "retired_pages.pending": ("", _const(NA)),
    "remapped_rows.correctable": ("", _const("0")),
    "remapped_rows.uncorrectable": ("", lambda g, ctx: "1" if g["remap_pending"] else "0"),
    "remapped_rows.pending": ("", lambda g, ctx: "Yes" if g["remap_pending"] else "No"),
    "remapped_rows.failure": ("", _const("No")),
    "remapped_rows.histogram.max": (
        "",
        lambda g, ctx: str(g["remap_banks"] - (1 if g["remap_pending"] else 0)),
    ),
    "remapped_rows.histogram.high": ("", lambda g, ctx: "1" if g["remap_pending"] else "0"),
    "remapped_rows.histogram.partial": ("", _const("0")),
    "remapped_rows.histogram.low": ("", _const("0")),
    "remapped_rows.histogram.none": ("", _const("0")),
    "temperature.gpu": ("", _key("temperature_c")),
    "temperature.gpu.tlimit": ("", lambda g, ctx: str(g["temp_limits"][2] - g["temperature_c"])),
    "temperature.memory": ("", _key("memory_temperature_c")),
    "power.management": ("", _const(DEPRECATED)),
    "power.draw": ("W", _watts(lambda g: float(g["power_draw_w"]))),
    "power.draw.average": ("W", _watts(lambda g: float(g["power_draw_w"]))),
    "power.draw.instant": ("W", _watts(lambda g: float(g["power_draw_w"]) - 0.23)),
    "power.limit": ("W", _watts(lambda g: float(g["power_limit_w"]))),
    "enforced.power.limit": ("W", _watts(lambda g: float(g["power_limit_w"]))),
    "power.default_limit": ("W", _watts(lambda g: float(g["power_limit_w"]))),
    "power.min_limit": ("W", _watts(lambda g: float(g["power_min_w"]))),
    "power.max_limit": ("W", _watts(lambda g: float(g["power_limit_w"]))),
    "edpp_multiplier": ("%", _const("100.00 %")),
    "clocks.current.graphics": ("MHz", _mhz(lambda g: int(g["clocks_idle"][0]))),
    "clocks.current.sm": ("MHz", _mhz(lambda g: int(g["clocks_idle"][1]))),
    "clocks.current.memory": ("MHz", _mhz(lambda g: int(g["clocks_idle"][2]))),
    "clocks.current.video": ("MHz", _mhz(lambda g: int(g["clocks_idle"][3]))),
    "clocks.applications.graphics": ("MHz", _const(DEPRECATED)),
    "clocks.applications.memory": ("MHz", _const(DEPRECATED)),
    "clocks.default_applications.graphics": ("MHz", _const(DEPRECATED)),
    "clocks.default_applications.memory": ("MHz", _const(DEPRECATED)),
    "clocks.max.graphics": ("MHz", _mhz(lambda g: int(g["clocks_max"][0]))),
    "clocks.max.sm": ("MHz", _mhz(lambda g: int(g["clocks_max"][1]))),
    "clocks.max.memory": ("MHz", _mhz(lambda g: int(g["clocks_max"][2]))),
    "mig.mode.current": ("", _const("Disabled")),
    "mig.mode.pending": ("", _const("Disabled")),
    "gsp.mode.current": ("", _const("Enabled")),
    "gsp.mode.default": ("", _const("Enabled")),
    "c2c.mode": ("", _const("Disabled")),
    "protected_memory.total": ("MiB", _const("0 MiB")),
    "protected_memory.used": ("MiB", _const("0 MiB")),
    "protected_memory.free": ("MiB", _const("0 MiB")),
    "fabric.state": ("", _fabric(0)),
    "fabric.status": ("", _fabric(1)),
    "fabric.cliqueId": ("", _const("0")),
    "fabric.clusterUuid": ("", _const("00000000-0000-0000-0000-000000000000")),
    "platform.chassis_serial_number": ("", _const("")),
    "platform.slot_number": ("", _const("0")),
    "platform.tray_index": ("", _const("0")),
    "platform.host_id": ("", _const("1")),
    "platform.peer_type": ("", _const("Direct Connected")),
    "platform.module_id": ("", _key("module_id")),
    "platform.gpu_fabric_guid": ("", _const("0x0000000000000000")),
    "hostname": ("", _const(NA)),
}

for _kind in ("corrected", "uncorrected"):
    for _scope in ("volatile", "aggregate"):
        _counted = _ecc_unc if _kind == "uncorrected" else _const("0")
        for _part in ("device_memory", "dram", "total"):
            FIELDS[f"ecc.errors.{_kind}.{_scope}.{_part}"] = ("", _counted)
        FIELDS[f"ecc.errors.{_kind}.{_scope}.sram"] = ("", _const("0"))
        for _part in ("register_file", "l1_cache", "l2_cache", "texture_memory", "cbu"):
            FIELDS[f"ecc.errors.{_kind}.{_scope}.{_part}"] = ("", _const(NA))
for _scope in ("volatile", "aggregate"):
    for _part in ("parity", "secded"):
        FIELDS[f"ecc.errors.uncorrected.{_scope}.sram.{_part}"] = ("", _const("0"))
FIELDS["ecc.errors.uncorrected.aggregate.sram.thresholdExceeded"] = ("", _const("No"))
for _part in ("l2", "sm", "mcu", "pcie", "other"):
    FIELDS[f"ecc.errors.uncorrected.aggregate.sram.{_part}"] = ("", _const("0"))
for _part in (
    "summary",
    "bandwidth",
    "route_recovery_in_progress",
    "route_unhealthy",
    "access_timeout_recovery",
    "incorrect_configuration",
):
    FIELDS[f"fabric.health.{_part}"] = ("", _const("N/A"))
for _name, _unit in (
    ("module.power.draw.average", "W"),
    ("module.power.draw.instant", "W"),
    ("module.power.limit", "W"),
    ("module.enforced.power.limit", "W"),
    ("module.power.default_limit", "W"),
    ("module.power.min_limit", "W"),
    ("module.power.max_limit", "W"),
    ("power_smoothing.delayed_power_smoothing_supported", ""),
    ("power_smoothing.primary_power_floor", "W"),
    ("power_smoothing.secondary_power_floor", "W"),
    ("power_smoothing.min_primary_floor_activation_offset", "W"),
    ("power_smoothing.min_primary_floor_activation_point", "W"),
    ("power_smoothing.window_multiplier", "ms"),
    ("power_smoothing.curr_profile.secondary_power_floor", "W"),
    ("power_smoothing.curr_profile.primary_floor_act_window_multiplier", ""),
    ("power_smoothing.curr_profile.primary_floor_tar_window_multiplier", ""),
    ("power_smoothing.curr_profile.primary_floor_act_offset", "W"),
    ("power_smoothing.admin_override.secondary_power_floor", "W"),
    ("power_smoothing.admin_override.primary_floor_act_window_multiplier", ""),
    ("power_smoothing.admin_override.primary_floor_tar_window_multiplier", ""),
    ("power_smoothing.admin_override.primary_floor_act_offset", "W"),
):
    FIELDS[_name] = (_unit, _const(NA))

# Older spellings nvidia-smi still accepts (the header echoes the name as typed).
ALIASES = {
    "gpu_name": "name",
    "gpu_uuid": "uuid",
    "gpu_bus_id": "pci.bus_id",
    "gpu_serial": "serial",
    "clocks.gr": "clocks.current.graphics",
    "clocks.sm": "clocks.current.sm",
    "clocks.mem": "clocks.current.memory",
    "clocks.video": "clocks.current.video",
    "clocks_throttle_reasons.active": "clocks_event_reasons.active",
    "clocks_throttle_reasons.supported": "clocks_event_reasons.supported",
    "clocks_throttle_reasons.gpu_idle": "clocks_event_reasons.gpu_idle",
    "clocks_throttle_reasons.hw_slowdown": "clocks_event_reasons.hw_slowdown",
    "clocks_throttle_reasons.sw_power_cap": "clocks_event_reasons.sw_power_cap",
    "clocks_throttle_reasons.sw_thermal_slowdown": "clocks_event_reasons.sw_thermal_slowdown",
    "clocks_throttle_reasons.hw_thermal_slowdown": "clocks_event_reasons.hw_thermal_slowdown",
}


def lookup(field: str) -> tuple[str, Getter] | None:
    return FIELDS.get(ALIASES.get(field, field))


def header(fields: list[str]) -> str:
    cells = []
    for f in fields:
        found = lookup(f)
        unit = found[0] if found else ""
        cells.append(f"{f} [{unit}]" if unit else f)
    return ", ".join(cells)


def row(fields: list[str], g: JSON, ctx: JSON, nounits: bool) -> str:
    cells = []
    for f in fields:
        found = lookup(f)
        assert found is not None  # validated before any output
        unit, getter = found
        value = getter(g, ctx)
        if nounits and unit and value.endswith(" " + unit):
            value = value[: -len(unit) - 1]
        cells.append(value)
    return ", ".join(cells)


def timestamp() -> str:
    now = time.time()
    return (
        time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
    )
