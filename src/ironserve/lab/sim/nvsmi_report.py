"""`nvidia-smi -q` (text) and `nvidia-smi -q -x` (XML) reports.

Text layout: the 8x H100 driver-535 capture (nvidia.md 3j). XML layout: the DTD v12 capture
(nvidia.md 3k, telegraf's a100-sxm4-v12.xml, 4-space indent as stored), with MIG disabled (so
``<mig_devices>None</mig_devices>``) and the remapped-row block a non-MIG GPU prints.
"""

from __future__ import annotations

import time
from typing import Any, Union
from xml.sax.saxutils import escape

JSON = dict[str, Any]
Tree = list[tuple[str, Union[str, "Tree"]]]


def _watts(x: float) -> str:
    return f"{x:.2f} W"


def _ecc_tree(g: JSON) -> Tree:
    unc = str(g["ecc_uncorrected"])
    block: Tree = [
        ("sram_correctable", "0"),
        ("sram_uncorrectable", "0"),
        ("dram_correctable", "0"),
        ("dram_uncorrectable", unc),
    ]
    return [("volatile", list(block)), ("aggregate", list(block))]


def _remap_tree(g: JSON) -> Tree:
    pending = bool(g["remap_pending"])
    return [
        ("remapped_row_corr", "0"),
        ("remapped_row_unc", "1" if pending else "0"),
        ("remapped_row_pending", "Yes" if pending else "No"),
        ("remapped_row_failure", "No"),
        (
            "row_remapper_histogram",
            [
                ("row_remapper_histogram_max", f"{g['remap_banks'] - int(pending)} bank(s)"),
                ("row_remapper_histogram_high", f"{int(pending)} bank(s)"),
                ("row_remapper_histogram_partial", "0 bank(s)"),
                ("row_remapper_histogram_low", "0 bank(s)"),
                ("row_remapper_histogram_none", "0 bank(s)"),
            ],
        ),
    ]


def gpu_xml_tree(g: JSON) -> Tree:
    cmax, cidle = g["clocks_max"], g["clocks_idle"]
    shutdown, slowdown, max_gpu, max_mem = g["temp_limits"]
    bus = g["pci_bus"]
    power_block: Tree = [
        ("power_state", "P0"),
        ("power_draw", _watts(g["power_draw_w"])),
        ("current_power_limit", _watts(g["power_limit_w"])),
        ("requested_power_limit", _watts(g["power_limit_w"])),
        ("default_power_limit", _watts(g["power_limit_w"])),
        ("min_power_limit", _watts(g["power_min_w"])),
        ("max_power_limit", _watts(g["power_limit_w"])),
    ]
    module_block: Tree = [("power_state", "P0")]
    module_block += [(k, "N/A") for k, _ in power_block[1:]]
    reasons = [
        "gpu_idle",
        "applications_clocks_setting",
        "sw_power_cap",
        "hw_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
        "sync_boost",
        "sw_thermal_slowdown",
        "display_clocks_setting",
    ]
    free = g["memory_mib"] - g["reserved_mib"]
    return [
        ("product_name", g["name"]),
        ("product_brand", "NVIDIA"),
        ("product_architecture", g["architecture"]),
        ("display_mode", "Enabled"),
        ("display_active", "Disabled"),
        ("persistence_mode", "Enabled" if g["persistence"] else "Disabled"),
        ("addressing_mode", "None"),
        ("mig_mode", [("current_mig", "Disabled"), ("pending_mig", "Disabled")]),
        ("mig_devices", "None"),
        ("accounting_mode", "Disabled"),
        ("accounting_mode_buffer_size", "4000"),
        ("driver_model", [("current_dm", "N/A"), ("pending_dm", "N/A")]),
        ("serial", g["serial"]),
        ("uuid", g["uuid"]),
        ("minor_number", str(g["minor_number"])),
        ("vbios_version", g["vbios"]),
        ("multigpu_board", "No"),
        ("board_id", g["board_id"]),
        ("board_part_number", g["board_part"]),
        ("gpu_part_number", g["gpu_part"]),
        ("gpu_fru_part_number", "N/A"),
        ("gpu_module_id", str(g["module_id"])),
        (
            "inforom_version",
            [
                ("img_version", g["inforom"][0]),
                ("oem_object", g["inforom"][1]),
                ("ecc_object", g["inforom"][2]),
                ("pwr_object", "N/A"),
            ],
        ),
        ("gpu_operation_mode", [("current_gom", "N/A"), ("pending_gom", "N/A")]),
        ("gsp_firmware_version", g["driver"]),
        (
            "gpu_virtualization_mode",
            [("virtualization_mode", "None"), ("host_vgpu_mode", "N/A")],
        ),
        (
            "gpu_reset_status",
            [
                ("reset_required", "Yes" if g["remap_pending"] else "No"),
                ("drain_and_reset_recommended", "No"),
            ],
        ),
        ("ibmnpu", [("relaxed_ordering_mode", "N/A")]),
        (
            "pci",
            [
                ("pci_bus", f"{bus:02X}"),
                ("pci_device", "00"),
                ("pci_domain", "0000"),
                ("pci_device_id", g["pci_device_id"][2:]),
                ("pci_bus_id", g["pci_bus_id"]),
                ("pci_sub_system_id", g["pci_sub_system_id"][2:]),
                (
                    "pci_gpu_link_info",
                    [
                        (
                            "pcie_gen",
                            [
                                ("max_link_gen", str(g["pcie_gen"])),
                                ("current_link_gen", str(g["pcie_gen"])),
                                ("device_current_link_gen", str(g["pcie_gen"])),
                                ("max_device_link_gen", str(g["pcie_gen"])),
                                ("max_host_link_gen", str(g["pcie_gen"])),
                            ],
                        ),
                        (
                            "link_widths",
                            [
                                ("max_link_width", f"{g['pcie_width']}x"),
                                ("current_link_width", f"{g['pcie_width']}x"),
                            ],
                        ),
                    ],
                ),
                ("pci_bridge_chip", [("bridge_chip_type", "N/A"), ("bridge_chip_fw", "N/A")]),
                ("replay_counter", "0"),
                ("replay_rollover_counter", "0"),
                ("tx_util", "0 KB/s"),
                ("rx_util", "0 KB/s"),
                ("atomic_caps_inbound", "N/A"),
                ("atomic_caps_outbound", "N/A"),
            ],
        ),
        ("fan_speed", "N/A"),
        ("performance_state", "P0"),
        (
            "clocks_event_reasons",
            [
                (f"clocks_event_reason_{r}", "Active" if r == "gpu_idle" else "Not Active")
                for r in reasons
            ],
        ),
        (
            "fb_memory_usage",
            [
                ("total", f"{g['memory_mib']} MiB"),
                ("reserved", f"{g['reserved_mib']} MiB"),
                ("used", "0 MiB"),
                ("free", f"{free} MiB"),
            ],
        ),
        (
            "bar1_memory_usage",
            [
                ("total", f"{g['bar1_mib']} MiB"),
                ("used", "1 MiB"),
                ("free", f"{g['bar1_mib'] - 1} MiB"),
            ],
        ),
        (
            "cc_protected_memory_usage",
            [("total", "0 MiB"), ("used", "0 MiB"), ("free", "0 MiB")],
        ),
        ("compute_mode", "Default"),
        (
            "utilization",
            [
                (k, "0 %")
                for k in (
                    [
                        "gpu_util",
                        "memory_util",
                        "encoder_util",
                        "decoder_util",
                        "jpeg_util",
                        "ofa_util",
                    ]
                )
            ],
        ),
        (
            "encoder_stats",
            [("session_count", "0"), ("average_fps", "0"), ("average_latency", "0")],
        ),
        (
            "fbc_stats",
            [("session_count", "0"), ("average_fps", "0"), ("average_latency", "0")],
        ),
        ("ecc_mode", [("current_ecc", "Enabled"), ("pending_ecc", "Enabled")]),
        ("ecc_errors", _ecc_tree(g)),
        (
            "retired_pages",
            [
                (
                    "multiple_single_bit_retirement",
                    [("retired_count", "N/A"), ("retired_pagelist", "N/A")],
                ),
                (
                    "double_bit_retirement",
                    [("retired_count", "N/A"), ("retired_pagelist", "N/A")],
                ),
                ("pending_blacklist", "N/A"),
                ("pending_retirement", "N/A"),
            ],
        ),
        ("remapped_rows", _remap_tree(g)),
        (
            "temperature",
            [
                ("gpu_temp", f"{g['temperature_c']} C"),
                ("gpu_temp_tlimit", f"{max_gpu - g['temperature_c']} C"),
                ("gpu_temp_max_threshold", f"{shutdown} C"),
                ("gpu_temp_slow_threshold", f"{slowdown} C"),
                ("gpu_temp_max_gpu_threshold", f"{max_gpu} C"),
                ("gpu_target_temperature", "N/A"),
                ("memory_temp", f"{g['memory_temperature_c']} C"),
                ("gpu_temp_max_mem_threshold", f"{max_mem} C" if max_mem else "N/A"),
            ],
        ),
        (
            "supported_gpu_target_temp",
            [("gpu_target_temp_min", "N/A"), ("gpu_target_temp_max", "N/A")],
        ),
        ("gpu_power_readings", power_block),
        ("module_power_readings", module_block),
        (
            "clocks",
            [
                ("graphics_clock", f"{cidle[0]} MHz"),
                ("sm_clock", f"{cidle[1]} MHz"),
                ("mem_clock", f"{cidle[2]} MHz"),
                ("video_clock", f"{cidle[3]} MHz"),
            ],
        ),
        (
            "applications_clocks",
            [("graphics_clock", f"{cmax[0]} MHz"), ("mem_clock", f"{cmax[2]} MHz")],
        ),
        (
            "default_applications_clocks",
            [("graphics_clock", f"{cmax[0]} MHz"), ("mem_clock", f"{cmax[2]} MHz")],
        ),
        ("deferred_clocks", [("mem_clock", "N/A")]),
        (
            "max_clocks",
            [
                ("graphics_clock", f"{cmax[0]} MHz"),
                ("sm_clock", f"{cmax[1]} MHz"),
                ("mem_clock", f"{cmax[2]} MHz"),
                ("video_clock", f"{cmax[3]} MHz"),
            ],
        ),
        ("max_customer_boost_clocks", [("graphics_clock", f"{cmax[0]} MHz")]),
        ("clock_policy", [("auto_boost", "N/A"), ("auto_boost_default", "N/A")]),
        ("voltage", [("graphics_volt", "670.000 mV")]),
        ("fabric", [("state", g["fabric"][0]), ("status", g["fabric"][1])]),
        (
            "supported_clocks",
            [
                (
                    "supported_mem_clock",
                    [
                        ("value", f"{cmax[2]} MHz"),
                        ("supported_graphics_clock", f"{cmax[0]} MHz"),
                    ],
                )
            ],
        ),
        ("processes", ""),
        ("accounted_processes", ""),
    ]


def _xml_lines(tree: Tree, depth: int) -> list[str]:
    pad = "    " * depth
    out = []
    for tag, value in tree:
        if isinstance(value, list):
            out.append(f"{pad}<{tag}>")
            out.extend(_xml_lines(value, depth + 1))
            out.append(f"{pad}</{tag}>")
        elif value == "" and tag in ("processes", "accounted_processes"):
            out.append(f"{pad}<{tag} />")
        else:
            out.append(f"{pad}<{tag}>{escape(value)}</{tag}>")
    return out


def _now() -> str:
    return time.strftime("%a %b %e %H:%M:%S %Y")


def xml_report(gpus: list[JSON], driver: str, cuda: str) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">',
        "<nvidia_smi_log>",
        f"    <timestamp>{_now()}</timestamp>",
        f"    <driver_version>{driver}</driver_version>",
        f"    <cuda_version>{cuda}</cuda_version>",
        f"    <attached_gpus>{len(gpus)}</attached_gpus>",
    ]
    for g in gpus:
        lines.append(f'    <gpu id="{g["pci_bus_id"]}">')
        lines.extend(_xml_lines(gpu_xml_tree({**g, "driver": driver}), 2))
        lines.append("    </gpu>")
    lines.append("</nvidia_smi_log>")
    return "\n".join(lines) + "\n"


# ---- text report (-q) ----

Text = list[tuple[str, Union[str, "Text"]]]


def gpu_text_tree(g: JSON, driver: str) -> Text:
    cmax, cidle = g["clocks_max"], g["clocks_idle"]
    pending = bool(g["remap_pending"])
    unc = str(g["ecc_uncorrected"])
    ecc_block: Text = [
        ("SRAM Correctable", "0"),
        ("SRAM Uncorrectable Parity", "0"),
        ("SRAM Uncorrectable SEC-DED", "0"),
        ("DRAM Correctable", "0"),
        ("DRAM Uncorrectable", unc),
    ]
    shutdown, slowdown, max_gpu, _max_mem = g["temp_limits"]
    power: Text = [
        ("Power Draw", _watts(g["power_draw_w"])),
        ("Current Power Limit", _watts(g["power_limit_w"])),
        ("Requested Power Limit", _watts(g["power_limit_w"])),
        ("Default Power Limit", _watts(g["power_limit_w"])),
        ("Min Power Limit", _watts(g["power_min_w"])),
        ("Max Power Limit", _watts(g["power_limit_w"])),
    ]
    gen = str(g["pcie_gen"])
    return [
        ("Product Name", g["name"]),
        ("Product Brand", "NVIDIA"),
        ("Product Architecture", g["architecture"]),
        ("Display Mode", "Enabled"),
        ("Display Active", "Disabled"),
        ("Persistence Mode", "Enabled" if g["persistence"] else "Disabled"),
        ("Addressing Mode", "None"),
        ("MIG Mode", [("Current", "Disabled"), ("Pending", "Disabled")]),
        ("Accounting Mode", "Disabled"),
        ("Accounting Mode Buffer Size", "4000"),
        ("Driver Model", [("Current", "N/A"), ("Pending", "N/A")]),
        ("Serial Number", g["serial"]),
        ("GPU UUID", g["uuid"]),
        ("Minor Number", str(g["minor_number"])),
        ("VBIOS Version", g["vbios"]),
        ("MultiGPU Board", "No"),
        ("Board ID", g["board_id"]),
        ("Board Part Number", g["board_part"]),
        ("GPU Part Number", g["gpu_part"]),
        ("FRU Part Number", "N/A"),
        ("Module ID", str(g["module_id"])),
        (
            "Inforom Version",
            [
                ("Image Version", g["inforom"][0]),
                ("OEM Object", g["inforom"][1]),
                ("ECC Object", g["inforom"][2]),
                ("Power Management Object", "N/A"),
            ],
        ),
        (
            "Inforom BBX Object Flush",
            [("Latest Timestamp", _bbx_stamp()), ("Latest Duration", "91568 us")],
        ),
        ("GPU Operation Mode", [("Current", "N/A"), ("Pending", "N/A")]),
        ("GSP Firmware Version", driver),
        ("GPU Virtualization Mode", [("Virtualization Mode", "None"), ("Host VGPU Mode", "N/A")]),
        (
            "GPU Reset Status",
            [
                ("Reset Required", "Yes" if pending else "No"),
                ("Drain and Reset Recommended", "No"),
            ],
        ),
        ("IBMNPU", [("Relaxed Ordering Mode", "N/A")]),
        (
            "PCI",
            [
                ("Bus", f"0x{g['pci_bus']:02X}"),
                ("Device", "0x00"),
                ("Domain", "0x0000"),
                ("Device Id", g["pci_device_id"]),
                ("Bus Id", g["pci_bus_id"]),
                ("Sub System Id", g["pci_sub_system_id"]),
                (
                    "GPU Link Info",
                    [
                        (
                            "PCIe Generation",
                            [
                                ("Max", gen),
                                ("Current", gen),
                                ("Device Current", gen),
                                ("Device Max", gen),
                                ("Host Max", gen),
                            ],
                        ),
                        (
                            "Link Width",
                            [("Max", f"{g['pcie_width']}x"), ("Current", f"{g['pcie_width']}x")],
                        ),
                    ],
                ),
                ("Bridge Chip", [("Type", "N/A"), ("Firmware", "N/A")]),
                ("Replays Since Reset", "0"),
                ("Replay Number Rollovers", "0"),
                ("Tx Throughput", "0 KB/s"),
                ("Rx Throughput", "0 KB/s"),
                ("Atomic Caps Inbound", "N/A"),
                ("Atomic Caps Outbound", "FETCHADD_32 FETCHADD_64 SWAP_32 SWAP_64 CAS_32 CAS_64"),
            ],
        ),
        ("Fan Speed", "N/A"),
        ("Performance State", "P0"),
        (
            "Clocks Event Reasons",
            [
                ("Idle", "Active"),
                ("Applications Clocks Setting", "Not Active"),
                ("SW Power Cap", "Not Active"),
                (
                    "HW Slowdown",
                    "Not Active",
                ),
                ("\tHW Thermal Slowdown", "Not Active"),
                ("\tHW Power Brake Slowdown", "Not Active"),
                ("Sync Boost", "Not Active"),
                ("SW Thermal Slowdown", "Not Active"),
                ("Display Clock Setting", "Not Active"),
            ],
        ),
        ("Sparse Operation Mode", "Disabled"),
        (
            "FB Memory Usage",
            [
                ("Total", f"{g['memory_mib']} MiB"),
                ("Reserved", f"{g['reserved_mib']} MiB"),
                ("Used", "0 MiB"),
                ("Free", f"{g['memory_mib'] - g['reserved_mib']} MiB"),
            ],
        ),
        (
            "BAR1 Memory Usage",
            [
                ("Total", f"{g['bar1_mib']} MiB"),
                ("Used", "1 MiB"),
                ("Free", f"{g['bar1_mib'] - 1} MiB"),
            ],
        ),
        (
            "Conf Compute Protected Memory Usage",
            [("Total", "0 MiB"), ("Used", "0 MiB"), ("Free", "0 MiB")],
        ),
        ("Compute Mode", "Default"),
        (
            "Utilization",
            [(k, "0 %") for k in ("Gpu", "Memory", "Encoder", "Decoder", "JPEG", "OFA")],
        ),
        (
            "Encoder Stats",
            [("Active Sessions", "0"), ("Average FPS", "0"), ("Average Latency", "0")],
        ),
        ("FBC Stats", [("Active Sessions", "0"), ("Average FPS", "0"), ("Average Latency", "0")]),
        ("ECC Mode", [("Current", "Enabled"), ("Pending", "Enabled")]),
        (
            "ECC Errors",
            [
                ("Volatile", list(ecc_block)),
                ("Aggregate", [*ecc_block, ("SRAM Threshold Exceeded", "No")]),
                (
                    "Aggregate Uncorrectable SRAM Sources",
                    [
                        ("SRAM L2", "0"),
                        ("SRAM SM", "0"),
                        ("SRAM Microcontroller", "0"),
                        ("SRAM PCIE", "0"),
                        ("SRAM Other", "0"),
                    ],
                ),
            ],
        ),
        (
            "Retired Pages",
            [
                ("Single Bit ECC", "N/A"),
                ("Double Bit ECC", "N/A"),
                ("Pending Page Blacklist", "N/A"),
            ],
        ),
        (
            "Remapped Rows",
            [
                ("Correctable Error", "0"),
                ("Uncorrectable Error", "1" if pending else "0"),
                ("Pending", "Yes" if pending else "No"),
                ("Remapping Failure Occurred", "No"),
                (
                    "Bank Remap Availability Histogram",
                    [
                        ("Max", f"{g['remap_banks'] - int(pending)} bank(s)"),
                        ("High", f"{int(pending)} bank(s)"),
                        ("Partial", "0 bank(s)"),
                        ("Low", "0 bank(s)"),
                        ("None", "0 bank(s)"),
                    ],
                ),
            ],
        ),
        (
            "Temperature",
            [
                ("GPU Current Temp", f"{g['temperature_c']} C"),
                ("GPU T.Limit Temp", f"{max_gpu - g['temperature_c']} C"),
                ("GPU Shutdown T.Limit Temp", f"{max_gpu - shutdown} C"),
                ("GPU Slowdown T.Limit Temp", f"{max_gpu - slowdown} C"),
                ("GPU Max Operating T.Limit Temp", "0 C"),
                ("GPU Target Temperature", "N/A"),
                ("Memory Current Temp", f"{g['memory_temperature_c']} C"),
                ("Memory Max Operating T.Limit Temp", "0 C"),
            ],
        ),
        ("GPU Power Readings", power),
        ("Module Power Readings", [(k, "N/A") for k, _ in power]),
        (
            "Clocks",
            [
                ("Graphics", f"{cidle[0]} MHz"),
                ("SM", f"{cidle[1]} MHz"),
                ("Memory", f"{cidle[2]} MHz"),
                ("Video", f"{cidle[3]} MHz"),
            ],
        ),
        ("Applications Clocks", [("Graphics", f"{cmax[0]} MHz"), ("Memory", f"{cmax[2]} MHz")]),
        (
            "Default Applications Clocks",
            [("Graphics", f"{cmax[0]} MHz"), ("Memory", f"{cmax[2]} MHz")],
        ),
        ("Deferred Clocks", [("Memory", "N/A")]),
        (
            "Max Clocks",
            [
                ("Graphics", f"{cmax[0]} MHz"),
                ("SM", f"{cmax[1]} MHz"),
                ("Memory", f"{cmax[2]} MHz"),
                ("Video", f"{cmax[3]} MHz"),
            ],
        ),
        ("Max Customer Boost Clocks", [("Graphics", f"{cmax[0]} MHz")]),
        ("Clock Policy", [("Auto Boost", "N/A"), ("Auto Boost Default", "N/A")]),
        ("Voltage", [("Graphics", "670.000 mV")]),
        ("Fabric", [("State", g["fabric"][0]), ("Status", g["fabric"][1])]),
        ("Processes", "None"),
    ]


def _bbx_stamp() -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S.000")


def _text_lines(tree: Text, depth: int) -> list[str]:
    out = []
    for key, value in tree:
        extra = 0
        if key.startswith("\t"):  # sub-reasons are indented one more level, same tree depth
            key, extra = key[1:], 1
        label = "    " * (depth + extra) + key
        if isinstance(value, list):
            out.append(label)
            out.extend(_text_lines(value, depth + 1))
        else:
            out.append(f"{label:<42}: {value}")
    return out


def text_report(gpus: list[JSON], driver: str, cuda: str) -> str:
    lines = [
        "",
        "==============NVSMI LOG==============",
        "",
        f"{'Timestamp':<42}: {_now()}",
        f"{'Driver Version':<42}: {driver}",
        f"{'CUDA Version':<42}: {cuda}",
        "",
        f"{'Attached GPUs':<42}: {len(gpus)}",
    ]
    for n, g in enumerate(gpus):
        if n:
            lines.append("")
        lines.append(f"GPU {g['pci_bus_id']}")
        lines.extend(_text_lines(gpu_text_tree(g, driver), 1))
    return "\n".join(lines) + "\n"
