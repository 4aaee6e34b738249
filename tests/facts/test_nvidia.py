"""nvidia-smi and kernel-log parsers, on verbatim captured outputs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ironserve.facts.nvidia import (
    NVIDIA_GPU_FIELDS,
    NvidiaDriver,
    NvidiaGpus,
    NvidiaXidEvents,
    NvSwitchPresent,
    filter_since,
    parse_nvidia_gpus,
    parse_nvidia_smi_table,
    parse_nvswitch_probe,
    parse_query_csv,
    parse_xid_lines,
)
from tests.facts.conftest import lines

# --- --query-gpu CSV -------------------------------------------------------------------------


def test_query_gpu_h100_590_header_form_with_na_and_deprecated_cells() -> None:
    (gpu,) = parse_nvidia_gpus(lines("nvidia-smi-query-gpu.h100.590.csv"))
    assert gpu["index"] == 0
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["uuid"] == "GPU-00000000-0000-0000-0000-000000000000"
    assert gpu["pci_bus_id"] == "00000000:00:09.0"
    assert gpu["memory_total_mib"] == 81559  # "81559 MiB": unit stripped
    assert gpu["driver_version"] == "590.48.01"
    assert gpu["persistence_mode"] is True  # "Enabled"
    assert gpu["ecc_uncorrected_volatile"] == 0
    assert gpu["retired_pages_pending"] is None  # "[N/A]" on Hopper (row remapping instead)
    assert gpu["remapped_rows_pending"] is False  # "No"
    assert gpu["remapped_rows_uncorrectable"] == 0
    assert gpu["pcie_link_width_current"] == 16
    assert gpu["pcie_link_width_max"] == 16
    assert gpu["clocks_event_reasons_active"] == 1  # 0x0000000000000001 = GPU idle
    assert gpu["fabric_state"] == "Completed"


def test_query_gpu_590_bracketed_notices_become_none() -> None:
    (row,) = parse_query_csv(lines("nvidia-smi-query-gpu.h100.590.csv"), NVIDIA_GPU_FIELDS)
    assert row["display_mode"] is None  # "[Requested functionality has been deprecated]"
    assert row["vgpu_driver_capability.heterogenous_multivGPU"] is None  # "[N/A]"
    assert row["fabric.health.summary"] is None  # "N/A" (no brackets)
    assert row["hostname"] is None  # "[N/A]", last column
    assert row["pstate"] == "P0"


def test_query_gpu_nounits_header_names_columns_p100() -> None:
    rows = parse_query_csv(lines("nvidia-smi-query-gpu-nounits.p100.csv"), NVIDIA_GPU_FIELDS)
    assert len(rows) == 1
    assert rows[0]["name"] == "Tesla P100-PCIE-16GB"
    assert rows[0]["memory.free"] == "16280"  # header "memory.free [MiB]" -> "memory.free"
    assert rows[0]["fan.speed"] is None  # "[N/A]"
    (gpu,) = parse_nvidia_gpus(lines("nvidia-smi-query-gpu-nounits.p100.csv"))
    assert gpu["index"] == 0  # not queried: position
    assert gpu["memory_total_mib"] is None  # not queried


def test_query_gpu_noheader_uses_the_given_fields() -> None:
    rows = parse_query_csv(
        lines("nvidia-smi-query-gpu-noheader.h100nvl.csv"), ["name", "pci.device_id"]
    )
    assert rows == [{"name": "NVIDIA H100 NVL", "pci.device_id": "0x232110DE"}]


def test_query_gpu_skips_error_text_and_uses_legacy_clock_name() -> None:
    output = [
        'Field "fabric.state" is not a valid field to query.',
        "index, name, clocks_throttle_reasons.active, persistence_mode",
        "0, NVIDIA A100-SXM4-80GB, 0x0000000000000004, Disabled",
        "1, NVIDIA A100-SXM4-80GB, [Not Supported], Enabled",
    ]
    gpus = NvidiaGpus().process(output)
    assert [g["clocks_event_reasons_active"] for g in gpus] == [4, None]
    assert [g["persistence_mode"] for g in gpus] == [False, True]
    assert [g["fabric_state"] for g in gpus] == [None, None]


def test_query_gpu_driver_failure_is_no_gpus() -> None:
    output = [
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running."
    ]
    assert NvidiaGpus().process(output) == []


# --- default nvidia-smi table ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "smi", "cuda", "count", "persistence", "bus0", "used0", "total0"),
    [
        ("nvidia-smi.h100x8.550.txt", "550.90.07", "12.4", 8, True, "00000000:19:00.0", 1, 81559),
        ("nvidia-smi.h100x8.560.txt", "560.35.03", "12.6", 8, False, "00000000:19:00.0", 1, 81559),
        ("nvidia-smi.h100.590.txt", "590.48.01", "13.1", 1, True, "00000000:00:09.0", 0, 81559),
        (
            "nvidia-smi.geforce.525.txt",
            "525.125.06",
            "12.0",
            1,
            False,
            "00000000:01:00.0",
            2021,
            23028,
        ),
    ],
)
def test_smi_table_layouts(
    fixture: str,
    smi: str,
    cuda: str,
    count: int,
    persistence: bool,
    bus0: str,
    used0: int,
    total0: int,
) -> None:
    info = parse_nvidia_smi_table(lines(fixture))
    assert info["smi_version"] == smi
    assert info["driver_version"] == smi
    assert info["cuda_version"] == cuda
    assert info["error"] is None
    assert len(info["gpus"]) == count
    first = info["gpus"][0]
    assert first["index"] == 0
    assert first["persistence_mode"] is persistence
    assert first["bus_id"] == bus0
    assert first["memory_used_mib"] == used0
    assert first["memory_total_mib"] == total0
    assert first["ecc_uncorrected_volatile"] == 0


def test_smi_table_h100x8_rows() -> None:
    gpus = parse_nvidia_smi_table(lines("nvidia-smi.h100x8.550.txt"))["gpus"]
    assert [g["index"] for g in gpus] == list(range(8))
    assert {g["name"] for g in gpus} == {"NVIDIA H100 80GB HBM3"}
    assert gpus[7]["bus_id"] == "00000000:DB:00.0"
    assert [g["temperature_c"] for g in gpus] == [27, 24, 23, 23, 27, 22, 24, 23]
    assert gpus[1]["power_draw_w"] == 74 and gpus[1]["power_cap_w"] == 700
    assert {g["mig_mode"] for g in gpus} == {"Disabled"}


def test_smi_table_old_layout_err_fan_and_truncated_name() -> None:
    (gpu,) = parse_nvidia_smi_table(lines("nvidia-smi.geforce.525.txt"))["gpus"]
    assert gpu["name"] == "NVIDIA GeForce ..."
    assert gpu["temperature_c"] == 38  # the fan cell is "ERR!"
    assert gpu["power_draw_w"] == 49 and gpu["power_cap_w"] == 450
    assert gpu["mig_mode"] is None  # "N/A"


def test_smi_q_text_gives_versions() -> None:
    info = parse_nvidia_smi_table(lines("nvidia-smi-q.h100.535.txt"))
    assert info["driver_version"] == "535.161.08"
    assert info["cuda_version"] == "12.2"


def test_smi_failure_is_reported_as_error() -> None:
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    info = NvidiaDriver().process(["", message])
    assert info is not None
    assert info["driver_version"] is None
    assert info["error"] == message


# --- NVSwitch ----------------------------------------------------------------------------------

# No public -mm capture of an HGX board; these lines follow pciutils' -mm format (see
# lspci-Dnnmm.virtio-vm.txt) with the H100 NVSwitch / GPU ids.
HGX_MM = [
    '0000:05:00.0 "Bridge [0680]" "NVIDIA Corporation [10de]" "GH100 [H100 NVSwitch] [22a3]" -ra1 "NVIDIA Corporation [10de]" "Device [1796]"',  # noqa: E501
    '0000:18:00.0 "3D controller [0302]" "NVIDIA Corporation [10de]" "GH100 [H100 SXM5 80GB] [2330]" -ra1 "NVIDIA Corporation [10de]" "Device [16c1]"',  # noqa: E501
]


def test_nvswitch_from_lspci_bridges() -> None:
    output = ["## proc", "## lspci", *HGX_MM]
    assert parse_nvswitch_probe(output) == {"proc_devices": [], "pci_bridges": ["0000:05:00.0"]}
    assert NvSwitchPresent().process(output) is True


def test_nvswitch_from_proc_devices() -> None:
    output = ["## proc", "0000:05:00.0", "0000:06:00.0", "## lspci"]
    assert parse_nvswitch_probe(output)["proc_devices"] == ["0000:05:00.0", "0000:06:00.0"]
    assert NvSwitchPresent().process(output) is True


def test_no_nvswitch_on_a_gpu_only_or_virtio_host() -> None:
    assert NvSwitchPresent().process(["## proc", "## lspci", HGX_MM[1]]) is False
    virtio = lines("lspci-Dnnmm.virtio-vm.txt")
    assert NvSwitchPresent().process(["## proc", "## lspci", *virtio]) is False


# --- Xid ---------------------------------------------------------------------------------------


def test_xid_4a_plain_dmesg_xid79_and_sxids() -> None:
    events = parse_xid_lines(lines("dmesg-xid79.txt"))
    xids = [e for e in events if e["kind"] == "xid"]
    sxids = [e for e in events if e["kind"] == "sxid"]
    assert (
        len(xids) == 1
    )  # the "NVRM: GPU 0000:91:00.0: GPU has fallen off the bus." echo is not counted
    assert xids[0]["xid"] == 79
    assert xids[0]["pci"] == "0000:91:00"
    assert xids[0]["message"] == "GPU has fallen off the bus."
    assert xids[0]["pid"] is None and xids[0]["process"] is None  # '<unknown>'
    assert xids[0]["uptime_s"] == pytest.approx(6781741.548779)
    assert xids[0]["time"] is None
    assert len(sxids) == 8
    assert {e["xid"] for e in sxids} == {20034}
    assert {e["pci"] for e in sxids} == {"0000:05:00.0", "0000:06:00.0", "0000:07:00.0"}
    assert sxids[0]["message"] == "Fatal, Link 48 LTSSM Fault Up"


def test_xid_4b_fallen_off_bus_without_xid_line() -> None:
    (event,) = parse_xid_lines(lines("dmesg-fallen-off-bus.570.txt"))
    assert event["xid"] == 79
    assert event["pci"] == "0000:b3:00.0"
    assert event["uptime_s"] == pytest.approx(1843.308145)


def test_xid_4c_iso_dbe_remap_contained() -> None:
    events = parse_xid_lines(lines("dmesg-iso-xid48-63-94.txt"))
    assert [e["xid"] for e in events] == [48, 63] + [94] * 9
    assert {e["pci"] for e in events} == {"0000:19:00"}
    assert events[0]["time"] == "2024-11-15T12:02:03.470068+00:00"
    assert events[0]["message"].startswith("An uncorrectable double bit error (DBE)")
    assert events[3]["pid"] == 1248209
    assert events[3]["process"] == "python3.10"
    assert events[3]["message"] == "Ch 00000008"


def test_xid_4d_dmesg_T_gsp_timeouts() -> None:
    events = parse_xid_lines(lines("dmesg-T-xid119.txt"))
    assert [e["xid"] for e in events] == [119] * 5
    assert [e["time"] for e in events] == [
        "2025-02-23T16:24:18",
        "2025-02-23T16:24:24",
        "2025-02-23T16:24:30",
        "2025-02-23T16:27:12",
        "2025-02-23T16:30:13",
    ]
    assert [e["process"] for e in events] == [
        "nvidia-smi",
        "nvidia-smi",
        "nvidia-smi",
        "cache_mgr_main",
        "gpud",
    ]
    assert events[4]["pid"] == 1240590


def test_xid_4e_decode_iso_facility_prefix() -> None:
    events = parse_xid_lines(lines("dmesg-decode-iso-xid13-43.txt"))
    assert [e["xid"] for e in events] == [13] * 6 + [43] * 3
    assert events[-1]["time"] == "2025-01-21T03:16:32.169326+00:00"
    assert events[-1]["pid"] == 2839444
    assert events[-1]["process"] == "pt_main_thread"


def test_xid_4f_short_form_without_name() -> None:
    (event,) = parse_xid_lines(lines("dmesg-T-xid63-short.txt"))
    assert event["xid"] == 63
    assert event["pci"] == "0000:10:1c"
    assert event["pid"] == 1896
    assert event["process"] is None
    assert event["message"].startswith("Row Remapper: New row marked for remapping")


def test_xid_journalctl_short_iso_and_window_filter() -> None:
    output = [
        "## cutoff 1731672000",  # 2024-11-15T12:00:00Z
        "2024-11-15T11:59:59+0000 gpu-7 kernel: NVRM: Xid (PCI:0000:19:00): 31, pid=7, name=a, old",
        "2024-11-15T12:02:03+0000 gpu-7 kernel: NVRM: Xid (PCI:0000:19:00): 48, pid='<unknown>', name=<unknown>, new",  # noqa: E501
    ]
    events = NvidiaXidEvents().process(output)
    assert [(e["xid"], e["time"]) for e in events] == [(48, "2024-11-15T12:02:03+00:00")]


def test_filter_since_keeps_events_of_unknown_age() -> None:
    events = parse_xid_lines(lines("dmesg-xid79.txt") + lines("dmesg-iso-xid48-63-94.txt"))
    kept = filter_since(events, datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert len(kept) == 9  # the 4a lines (uptime stamps) stay, every 2024 ISO line goes
    assert all(e["time"] is None for e in kept)


def test_xid_command_quotes_since() -> None:
    command = NvidiaXidEvents().command(since="1 hour ago; rm -rf /")
    assert "--since '1 hour ago; rm -rf /'" in command
    assert "date -u -d '1 hour ago; rm -rf /' +%s" in command
