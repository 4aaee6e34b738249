"""Host facts run for real on this machine (pyinfra ``@local``), checked against Python's view."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.facts import get_facts

from ironserve.facts.ascend import HccnConf
from ironserve.facts.docker import DockerDaemonJson
from ironserve.facts.host import FreeDiskBytes, IommuEnabled, MemlockLimit, ShmSize
from ironserve.facts.nvidia import NvidiaXidEvents
from tests.facts.conftest import lines

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux shell")


def _local(fact: type, **kwargs: Any) -> Any:
    state = State(inventory=Inventory((["@local"], {})), config=Config())
    connect_all(state)
    (value,) = (
        get_facts(state, fact, kwargs=kwargs) if kwargs else get_facts(state, fact)
    ).values()
    return value


def test_free_disk_bytes_matches_statvfs(tmp_path: Path) -> None:
    stat = os.statvfs(tmp_path)
    expected = stat.f_bavail * stat.f_frsize
    value = _local(FreeDiskBytes, path=str(tmp_path / "not" / "yet" / "created"))
    assert value == pytest.approx(expected, rel=0.01)


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_shm_size_matches_statvfs() -> None:
    stat = os.statvfs("/dev/shm")
    value = _local(ShmSize)
    assert value["mount"] == "/dev/shm"
    assert value["size_bytes"] == stat.f_blocks * stat.f_frsize


def test_memlock_matches_getrlimit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    value = _local(MemlockLimit)
    if soft == resource.RLIM_INFINITY:
        assert value == {"unlimited": True, "bytes": None}
    else:
        assert value == {"unlimited": False, "bytes": soft}


def test_iommu_reports_this_kernels_units() -> None:
    units = len(os.listdir("/sys/class/iommu")) if os.path.isdir("/sys/class/iommu") else 0
    value = _local(IommuEnabled)
    assert value["sysfs_units"] == units


def test_daemon_json_files(tmp_path: Path) -> None:
    good = tmp_path / "daemon.json"
    good.write_text("\n".join(lines("daemon.json.default-runtime.json")))
    assert _local(DockerDaemonJson, path=str(good))["default-runtime"] == "nvidia"
    assert _local(DockerDaemonJson, path=str(tmp_path / "absent.json")) == {}


def test_hccn_conf_file(tmp_path: Path) -> None:
    conf = tmp_path / "hccn conf"
    conf.write_text("\n".join(lines("hccn.conf.txt")) + "\n")
    value = _local(HccnConf, path=str(conf))
    assert value[7]["address"] == "29.1.170.143"


def test_xid_command_runs_and_finds_no_gpu_errors_here() -> None:
    # The command is valid sh on this machine (journalctl or dmesg path); a build machine has
    # no NVIDIA kernel messages.
    assert _local(NvidiaXidEvents, since="10 minutes ago") == []
