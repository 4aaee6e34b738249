"""lspci, ulimit, df, time-sync and IOMMU parsers."""

from __future__ import annotations

import pytest

from ironserve.facts.host import (
    FreeDiskBytes,
    IommuEnabled,
    MemlockLimit,
    PciDevices,
    ShmSize,
    TimeSync,
    parse_df,
    parse_lspci,
)
from tests.facts.conftest import lines


def test_lspci_machine_format_capture() -> None:
    devices = PciDevices().process(lines("lspci-Dnnmm.virtio-vm.txt"))
    assert len(devices) == 6
    assert devices[0] == {
        "slot": "0000:00:00.0",
        "class": "Host bridge",
        "class_id": "0600",
        "vendor": "Intel Corporation",
        "vendor_id": "8086",
        "device": "Device",
        "device_id": "0d57",
        "rev": None,
    }
    balloon = devices[1]
    assert balloon["vendor"] == "Red Hat, Inc."  # a comma in the name: only -mm keeps it apart
    assert balloon["device"] == "Virtio 1.0 memory balloon"
    assert balloon["rev"] == "01"
    assert balloon["class_id"] == "ffff"


def test_lspci_human_format_capture_matches_machine_ids() -> None:
    human = parse_lspci(lines("lspci-Dnn.virtio-vm.txt"))
    machine = parse_lspci(lines("lspci-Dnnmm.virtio-vm.txt"))
    key = ("slot", "class", "class_id", "vendor_id", "device_id", "rev")
    assert [tuple(d[k] for k in key) for d in human] == [tuple(d[k] for k in key) for d in machine]
    assert human[2]["device"] == "Red Hat, Inc. Virtio 1.0 block device"
    assert human[2]["vendor"] is None


def test_lspci_human_format_brief_example() -> None:
    (gpu,) = parse_lspci(
        [
            "0000:18:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)"  # noqa: E501
        ]
    )
    assert gpu["slot"] == "0000:18:00.0"
    assert gpu["class"] == "3D controller" and gpu["class_id"] == "0302"
    assert gpu["vendor_id"] == "10de" and gpu["device_id"] == "2330"
    assert gpu["device"] == "NVIDIA Corporation GH100 [H100 SXM5 80GB]"
    assert gpu["rev"] == "a1"


def test_lspci_without_domain_and_junk() -> None:
    devices = parse_lspci(
        ["$ lspci -nn", "05:00.0 Bridge [0680]: NVIDIA Corporation Device [10de:22a3] (rev a1)"]
    )
    assert [(d["slot"], d["class_id"]) for d in devices] == [("0000:05:00.0", "0680")]


def test_pci_devices_vendor_filter_command() -> None:
    assert PciDevices().command() == "lspci -Dnnmm"
    assert PciDevices().command(vendor_id="10DE") == "lspci -Dnnmm -d 10de:"
    with pytest.raises(ValueError):
        PciDevices().command(vendor_id="10de; reboot")


def test_memlock() -> None:
    assert MemlockLimit().process(["unlimited"]) == {"unlimited": True, "bytes": None}
    assert MemlockLimit().process(["8192"]) == {"unlimited": False, "bytes": 8 * 1024 * 1024}
    assert MemlockLimit().process(["sh: ulimit: bad option"]) is None


def test_df_posix_output() -> None:
    output = [
        "Filesystem      1-blocks  Used   Available Capacity Mounted on",
        "shm             67108864     0    67108864       0% /dev/shm",
    ]
    assert ShmSize().process(output) == {
        "filesystem": "shm",
        "size_bytes": 67108864,
        "used_bytes": 0,
        "available_bytes": 67108864,
        "mount": "/dev/shm",
    }
    assert parse_df(["df: /dev/shm: No such file or directory"]) is None


def test_free_disk_command_walks_up_to_an_existing_parent() -> None:
    command = FreeDiskBytes().command(path="/data/weights/my model")
    assert command.startswith("p='/data/weights/my model';")
    assert 'p=$(dirname "$p")' in command
    output = [
        "Filesystem 1-blocks Used Available Capacity Mounted on",
        "/dev/nvme0n1p1 100 40 60 40% /",
    ]
    assert FreeDiskBytes().process(output) == 60


def test_time_sync_timedatectl_and_chronyc() -> None:
    assert TimeSync().process(["timedatectl: yes"]) == {
        "synchronized": True,
        "source": "timedatectl",
        "detail": "yes",
    }
    assert TimeSync().process(["timedatectl: no"])["synchronized"] is False  # type: ignore[index]
    # chronyc tracking's documented field layout (no public capture in the reference set)
    chrony = [
        "chronyc:",
        "Reference ID    : A9FEA97B (169.254.169.123)",
        "Stratum         : 4",
        "Leap status     : Normal",
    ]
    assert TimeSync().process(chrony) == {
        "synchronized": True,
        "source": "chronyc",
        "detail": "A9FEA97B (169.254.169.123)",
    }
    unsynced = ["chronyc:", "Reference ID    : 00000000 ()", "Leap status     : Not synchronised"]
    assert TimeSync().process(unsynced)["synchronized"] is False  # type: ignore[index]
    assert TimeSync().process(["chronyc:", "506 Cannot talk to daemon"])["synchronized"] is None  # type: ignore[index]


def test_iommu_states() -> None:
    on = IommuEnabled().process(
        [
            "## cmdline BOOT_IMAGE=/vmlinuz ro intel_iommu=on iommu=pt quiet",
            "## units 8",
            "## vastai 0",
        ]
    )
    assert on == {
        "enabled": True,
        "passthrough": True,
        "cmdline_flags": ["intel_iommu=on", "iommu=pt"],
        "sysfs_units": 8,
        "vastai_warning": False,
        "dmesg": [],
    }
    off = IommuEnabled().process(["## cmdline ro intel_iommu=off", "## units 0", "## vastai 0"])
    assert off is not None and off["enabled"] is False
    vastai = IommuEnabled().process(["## cmdline ro", "## units 0", "## vastai 2"])
    assert vastai is not None and vastai["enabled"] is True and vastai["vastai_warning"] is True


def _iommu(cmdline: str, units: int = 0, dmesg: tuple[str, ...] = ()) -> dict[str, object]:
    state = IommuEnabled().process(
        [f"## cmdline {cmdline}", f"## units {units}", "## vastai 0", "## dmesg", *dmesg]
    )
    assert state is not None
    return dict(state)


def test_iommu_enabled_from_the_kernel_log_alone() -> None:
    intel = _iommu("ro quiet", dmesg=("[    0.012345] DMAR: IOMMU enabled",))
    assert intel["enabled"] is True
    assert intel["dmesg"] == ["[    0.012345] DMAR: IOMMU enabled"]
    amd = _iommu(
        "ro quiet",
        dmesg=(
            "[    0.9] AMD-Vi: Found IOMMU at 0000:00:00.2 cap 0x40",
            "[    0.9] AMD-Vi: Interrupt remapping enabled",
        ),
    )
    assert amd["enabled"] is True and len(amd["dmesg"]) == 2  # type: ignore[arg-type]


def test_iommu_amd_vi_lines_of_a_machine_without_one_are_not_enabled() -> None:
    state = _iommu("ro quiet", dmesg=("[    1.2] AMD-Vi: AMD IOMMUv2 functionality not available",))
    assert state["enabled"] is False and state["dmesg"] == []


def test_iommu_enabled_from_the_kernel_command_line() -> None:
    for flag in ("intel_iommu=on", "amd_iommu=on", "iommu=pt"):
        assert _iommu(f"ro {flag}")["enabled"] is True, flag
    assert _iommu("ro intel_iommu=on intel_iommu=off")["enabled"] is False
    assert _iommu("ro", units=4)["enabled"] is True  # /sys/class/iommu entries
    assert _iommu("ro")["enabled"] is False
