"""Node-tier verdicts (health/nvidia_checks.py, host_checks.py, ascend_checks.py) on real captured
outputs parsed by the facts parsers: tests/fixtures/outputs (SOURCES.md) and tests/facts/fixtures
(README.md names each source). Where no public capture exists (a non-OK ``npu-smi -t health``,
``ulimit -l``, ``df /dev/shm``, ``chronyc tracking``), the fixtures README says so and the test
writes the tool's one-line output literally."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironserve.facts.ascend import (
    parse_hccn_ip,
    parse_hccn_tls,
    parse_hccn_value,
    parse_npu_health,
)
from ironserve.facts.docker import parse_docker_runtimes
from ironserve.facts.host import parse_df, parse_iommu, parse_lspci, parse_memlock, parse_time_sync
from ironserve.facts.nvidia import NvidiaGpu, parse_nvidia_gpus, parse_nvidia_smi_table
from ironserve.facts.rdma import parse_ibstat
from ironserve.health import RUNBOOKS
from ironserve.health import ascend_checks as ac
from ironserve.health import host_checks as hc
from ironserve.health import nvidia_checks as nv
from ironserve.health.model import CheckResult, Status
from ironserve.health.runner import _cuda_of, vendor_of
from ironserve.plan.derived import NodeDisk
from ironserve.rules.disk import node_disk_need_bytes
from ironserve.runbooks import load_all

TESTS = Path(__file__).resolve().parents[1]
OUTPUTS = TESTS / "fixtures" / "outputs"
FACTS = TESTS / "facts" / "fixtures"
GIB = 1024**3


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _h100() -> list[NvidiaGpu]:
    return parse_nvidia_gpus(_lines(OUTPUTS / "nvidia-smi-query-gpu.h100.590.csv"))


def _runbook_ok(result: CheckResult) -> None:
    """A non-OK result names a runbook that exists, lists the check and is in RUNBOOKS."""
    assert result.runbook in RUNBOOKS, result
    book = load_all()[result.runbook]
    assert result.check in book.checks, (result.check, book.id, book.checks)


# --------------------------------------------------------------------------------------------
# NVIDIA


def test_healthy_h100_from_real_query_is_ok_on_every_check() -> None:
    gpus = _h100()
    info = parse_nvidia_smi_table(_lines(OUTPUTS / "nvidia-smi.h100.590.txt"))
    results = [
        nv.driver("n1", info, gpus, "590", "12.8"),
        nv.persistence("n1", gpus),
        nv.fabric_manager("n1", True, gpus),
        nv.pcie_width("n1", gpus),
        nv.throttle("n1", gpus),
    ]
    assert [r.status for r in results if r] == [Status.OK] * 5, results
    assert results[0].observed.startswith("590.48.01, CUDA 13")
    assert results[3].observed == "x16"


def test_driver_branch_and_cuda_against_the_plan() -> None:
    info = parse_nvidia_smi_table(_lines(FACTS / "nvidia-smi.h100x8.560.txt"))
    gpus = _h100()  # 590 on the query side: two drivers reported
    wrong = nv.driver("n1", info, None, "580", None)
    assert wrong.status is Status.FAIL and "not branch 580" in wrong.observed
    assert wrong.runbook == "upgrade-driver"
    _runbook_ok(wrong)
    assert nv.driver("n1", info, None, None, None).expected == "any"
    assert nv.driver("n1", info, None, None, None).status is Status.OK
    old_cuda = nv.driver("n1", info, None, "560", "99.0")
    assert old_cuda.status is Status.FAIL and "< 99.0" in old_cuda.observed
    mixed = nv.driver("n1", info, [*gpus, {**gpus[0], "driver_version": "560.35.03"}], "560", None)
    assert "different drivers" in mixed.observed
    no_driver = nv.driver(
        "n1", parse_nvidia_smi_table(["NVIDIA-SMI has failed because"]), [], "x", None
    )
    assert (no_driver.status, no_driver.runbook) == (Status.FAIL, "gpu-driver")
    assert nv.driver("n1", None, None, "580", None).status is Status.UNKNOWN


def test_driver_pinned_version_names_a_node_that_differs() -> None:
    info = parse_nvidia_smi_table(_lines(OUTPUTS / "nvidia-smi.h100.590.txt"))  # 590.48.01
    pinned = nv.driver("n1", info, None, "590", None, "590.48.01-0ubuntu1")
    assert pinned.status is Status.OK and "version 590.48.01" in pinned.expected
    drifted = nv.driver("gpu-7", info, None, "590", None, "1:590.44.01-1")
    assert (drifted.status, drifted.node) == (Status.FAIL, "gpu-7")
    assert "590.48.01 is not the pinned 590.44.01" in drifted.observed
    assert drifted.runbook == "upgrade-driver"


def test_persistence_pcie_and_throttle_degraded() -> None:
    gpu = _h100()[0]
    off = [{**gpu, "persistence_mode": False}]
    assert nv.persistence("n1", off).status is Status.WARN  # type: ignore[arg-type]
    assert nv.persistence("n1", off, wanted=False).status is Status.OK  # type: ignore[arg-type]
    narrow = nv.pcie_width("n1", [{**gpu, "pcie_link_width_current": 8}])  # type: ignore[list-item]
    assert (narrow.status, narrow.observed) == (Status.WARN, "GPU 0 x8/x16")
    _runbook_ok(narrow)
    # 0x1 (idle) in the capture; 0x48 = HW slowdown + HW thermal
    hot = nv.throttle("n1", [{**gpu, "clocks_event_reasons_active": 0x48}])  # type: ignore[list-item]
    assert hot.status is Status.WARN and "hw_slowdown+hw_thermal" in hot.observed
    _runbook_ok(hot)
    for check in (nv.persistence, nv.pcie_width, nv.throttle):
        assert check("n1", None).status is Status.UNKNOWN


def test_fabric_manager_only_on_nvswitch_boards() -> None:
    gpus = _h100()
    assert nv.fabric_manager("n1", False, gpus) is None
    training = [{**g, "fabric_state": "In Progress"} for g in gpus]
    down = nv.fabric_manager("n1", True, training)  # type: ignore[arg-type]
    assert down is not None
    assert (down.status, down.runbook) == (Status.FAIL, "fabric-manager")
    assert "In Progress" in down.observed
    _runbook_ok(down)
    legacy = [{**g, "fabric_state": None} for g in gpus]  # pre-535 driver: no fabric.state
    assert nv.fabric_manager("n1", True, legacy).status is Status.UNKNOWN  # type: ignore[union-attr,arg-type]
    assert nv.fabric_manager("n1", None, gpus).status is Status.UNKNOWN  # type: ignore[union-attr]


def test_cuda_version_of_the_toolkit_package() -> None:
    assert _cuda_of("cuda-toolkit-12-8") == "12.8"
    assert _cuda_of(None) is None and _cuda_of("cuda-toolkit") is None


def test_vendor_of_catalog_ids() -> None:
    assert vendor_of("h100-80g") == "nvidia"
    assert vendor_of("ascend-910b-64g") == "ascend"
    assert vendor_of("va16-128g") == "vastai"


# --------------------------------------------------------------------------------------------
# Fabric


def test_ib_ports_all_active_is_ok_and_down_ports_fail() -> None:
    ok = hc.ib_ports("n1", parse_ibstat(_lines(FACTS / "ibstat.h100.all-active.spaces.txt")), [])
    assert ok.status is Status.OK, ok
    roce = hc.ib_ports("n1", parse_ibstat(_lines(FACTS / "ibstat.h100.roce.txt")), [])
    assert roce.status is Status.OK, roce
    some_down = parse_ibstat(_lines(OUTPUTS / "ibstat.h100.some-down.txt"))
    down = hc.ib_ports("n1", some_down, [])
    assert (down.status, down.runbook) == (Status.FAIL, "ib-port")
    assert "mlx5_2 port 1 is DOWN" in down.observed and "mlx5_7 port 1 is DOWN" in down.observed
    assert "mlx5_1" not in down.observed  # the 100G Ethernet NIC is judged against its own kind
    _runbook_ok(down)
    only_up = hc.ib_ports("n1", some_down, ["mlx5_0", "mlx5_3"])  # the inventory's NCCL HCAs
    assert only_up.status is Status.OK, only_up
    missing = hc.ib_ports("n1", some_down, ["mlx5_0", "mlx5_99"])
    assert missing.status is Status.FAIL and "HCA mlx5_99 not found" in missing.observed
    assert hc.ib_ports("n1", None, []).status is Status.UNKNOWN


def test_ib_port_below_the_planned_rate_warns() -> None:
    ports = parse_ibstat(_lines(FACTS / "ibstat.h100.all-active.spaces.txt"))
    slow = hc.ib_ports("n1", ports, [], min_rate_gbps=800)
    assert slow.status is Status.WARN and "400 Gb/s" in slow.observed


# --------------------------------------------------------------------------------------------
# Host


def _planned_disk(weights: int, margin: float = 1.1) -> NodeDisk:
    need = node_disk_need_bytes(weights, margin)
    return NodeDisk(node="n1", path="/x", weights_bytes=weights, margin=margin, need_bytes=need)


def test_disk_for_the_weights() -> None:
    weights = 16 * GIB
    planned = _planned_disk(weights)
    ok = hc.disk("n1", "/data/models", 100 * GIB, 0, planned)
    assert ok.status is Status.OK
    full = hc.disk("n1", "/data/models", 0, 33_558_885, planned)  # the lab's disk-full
    assert (full.status, full.runbook) == (Status.FAIL, "disk-full")
    _runbook_ok(full)
    # weights all present: only the margin is still needed
    assert hc.disk("n1", "/data/models", 2 * GIB, weights, planned).status is Status.OK
    assert hc.disk("n1", "/x", None, 0, planned).status is Status.UNKNOWN
    assert hc.disk("n1", "/x", 5, 0, None).expected == "any (no Plan)"


def test_shm_memlock_time_sync() -> None:
    # `df -P -B1 /dev/shm` and `ulimit -l` on the ironserve build machine's lab node (no public
    # capture: see tests/facts/fixtures/README.md)
    shm = parse_df(
        [
            "Filesystem     1-blocks  Used Available Capacity Mounted on",
            "shm            67108864     0  67108864       0% /dev/shm",
        ]
    )
    assert hc.shm("n1", shm, 64 * 1024**2).status is Status.OK
    small = hc.shm("n1", shm, GIB)
    assert (small.status, small.runbook) == (Status.WARN, "host-limits")
    _runbook_ok(small)
    limited = parse_memlock(["8192"])
    assert hc.memlock("n1", limited, -1).status is Status.WARN
    assert hc.memlock("n1", limited, 8 * 1024**2).status is Status.OK  # the site's containers' cap
    assert hc.memlock("n1", parse_memlock(["unlimited"]), -1).status is Status.OK
    assert hc.memlock("n1", None, -1).status is Status.UNKNOWN
    _runbook_ok(hc.memlock("n1", limited, -1))
    synced = parse_time_sync(["timedatectl: yes"])
    assert hc.time_sync("n1", synced, "chrony").status is Status.OK
    drift = hc.time_sync(
        "n1", parse_time_sync(["chronyc:", "Leap status     : Not synchronised"]), "chrony"
    )
    assert drift.status is Status.WARN
    _runbook_ok(drift)
    unmanaged = hc.time_sync("n1", parse_time_sync(["timedatectl: no"]), None)
    assert unmanaged.status is Status.OK and "not synchronised" in unmanaged.observed
    assert hc.time_sync("n1", parse_time_sync([]), "chrony").status is Status.UNKNOWN


def test_container_runtime_needs_nvidia_on_gpu_nodes() -> None:
    nvidia = parse_docker_runtimes(_lines(FACTS / "docker-info.nvidia-runtime.txt"))
    assert hc.container_runtime("n1", nvidia, True, True).status is Status.OK
    plain = parse_docker_runtimes(_lines(FACTS / "docker-info-runtimes-json.docker20.10.txt"))
    assert hc.container_runtime("n1", plain, True, False).status is Status.OK
    missing = hc.container_runtime("n1", plain, True, True)
    assert (missing.status, missing.runbook) == (Status.FAIL, "container-runtime")
    _runbook_ok(missing)
    grep = parse_docker_runtimes(_lines(FACTS / "docker-info-grep-runtime.missing-nvidia.txt"))
    assert hc.container_runtime("n1", grep, True, True).status is Status.FAIL
    down = parse_docker_runtimes(
        ["Cannot connect to the Docker daemon at unix:///var/run/docker.sock"]
    )
    assert "does not answer" in hc.container_runtime("n1", down, True, False).observed
    assert hc.container_runtime("n1", None, False, False).status is Status.FAIL
    assert hc.container_runtime("n1", None, True, False).status is Status.UNKNOWN


def test_vastai_devices_and_iommu() -> None:
    vm = parse_lspci(_lines(FACTS / "lspci-Dnnmm.virtio-vm.txt"))  # no Vastai functions
    gone = hc.vastai_devices("n1", vm, 8)
    assert (gone.status, gone.runbook) == (Status.FAIL, "vastai-devices")
    _runbook_ok(gone)
    dies = [
        {"vendor_id": "1ec6", "class_id": "1200", "slot": f"0000:{i:02x}:00.0"} for i in range(32)
    ]
    assert hc.vastai_devices("n1", dies, 8).status is Status.OK
    assert hc.vastai_devices("n1", None, 8).status is Status.UNKNOWN
    off = parse_iommu(
        ["## cmdline BOOT_IMAGE=/vmlinuz intel_iommu=off", "## units 0", "## vastai 0"]
    )
    assert hc.vastai_iommu("n1", off).status is Status.OK
    on = parse_iommu(["## cmdline BOOT_IMAGE=/vmlinuz intel_iommu=on", "## units 8", "## vastai 1"])
    bad = hc.vastai_iommu("n1", on)
    assert (bad.status, bad.runbook) == (Status.FAIL, "vastai-devices")
    _runbook_ok(bad)
    assert hc.vastai_iommu("n1", None).status is Status.UNKNOWN


# --------------------------------------------------------------------------------------------
# Ascend


def _per_npu(value: object, count: int = 8) -> dict[int, object]:
    return dict.fromkeys(range(count), value)


@pytest.mark.parametrize("name", ["npu-smi-health.txt", "npu-smi-health.leading-space.txt"])
def test_npu_health_ok_from_real_output(name: str) -> None:
    path = OUTPUTS / name if (OUTPUTS / name).exists() else FACTS / name
    state = parse_npu_health(_lines(path))
    result = ac.npu_health("n1", _per_npu(state), 8)  # type: ignore[arg-type]
    assert result.status is Status.OK, result


def test_npu_alarm_fails_with_its_runbook() -> None:
    ok = parse_npu_health(_lines(OUTPUTS / "npu-smi-health.txt"))
    # no public capture of a non-OK health: npu-smi prints the same three lines with Alarm
    alarm = parse_npu_health(
        ["Health Status : Alarm", "Error Code : 80E18005", "Error Information : x"]
    )
    health = {**_per_npu(ok), 7: alarm}
    result = ac.npu_health("n1", health, 8)  # type: ignore[arg-type]
    assert (result.status, result.runbook) == (Status.FAIL, "npu-alarm")
    assert result.observed == "NPU 7 Alarm (80E18005)"
    _runbook_ok(result)
    assert ac.npu_health("n1", {}, 8).status is Status.UNKNOWN
    assert "NPU 7 not listed" in ac.npu_health("n1", _per_npu(ok, 7), 8).observed  # type: ignore[arg-type]


def test_hccn_link_and_net_health() -> None:
    up = parse_hccn_value(_lines(OUTPUTS / "hccn-link-g.txt"), "link status")
    success = parse_hccn_value(_lines(OUTPUTS / "hccn-net-health-success.txt"), "net health status")
    fault = parse_hccn_value(_lines(FACTS / "hccn-net-health-fault.txt"), "net health status")
    init = parse_hccn_value(_lines(FACTS / "hccn-net-health-init.txt"), "net health status")
    assert ac.hccn_link("n1", _per_npu(up), _per_npu(success), 8).status is Status.OK  # type: ignore[arg-type]
    down = ac.hccn_link("n1", {**_per_npu(up), 3: "DOWN"}, {**_per_npu(success), 3: fault}, 8)  # type: ignore[dict-item]
    assert (down.status, down.runbook, down.observed) == (
        Status.FAIL,
        "npu-link",
        "NPU 3 link DOWN",
    )
    _runbook_ok(down)
    faulty = ac.hccn_link("n1", _per_npu(up), {**_per_npu(success), 5: fault}, 8)  # type: ignore[arg-type,dict-item]
    assert faulty.status is Status.FAIL and "NPU 5 net_health Fault" in faulty.observed
    waiting = ac.hccn_link("n1", _per_npu(up), {**_per_npu(success), 1: init}, 8)  # type: ignore[arg-type,dict-item]
    assert waiting.status is Status.WARN
    assert ac.hccn_link("n1", {}, {}, 8).status is Status.UNKNOWN


def test_hccn_ip_against_the_rank_table() -> None:
    real = parse_hccn_ip(_lines(OUTPUTS / "hccn-ip-g.txt"))  # 10.xx.xx.10: the author's mask
    assert ac.hccn_ip("n1", {0: real}, [], 1).status is Status.OK
    wrong = ac.hccn_ip("n1", {0: real}, ["10.201.0.1"], 1)
    assert (wrong.status, wrong.runbook) == (Status.FAIL, "npu-link")
    assert wrong.observed == "NPU 0 10.xx.xx.10 != 10.201.0.1"
    _runbook_ok(wrong)
    unset = ac.hccn_ip("n1", {0: {"ipaddr": None, "netmask": None}}, [], 1)
    assert unset.status is Status.FAIL and "unconfigured" in unset.observed
    assert ac.hccn_ip("n1", {}, [], 1).status is Status.UNKNOWN


def test_hccn_tls_consistent_with_the_group() -> None:
    off = parse_hccn_tls(_lines(OUTPUTS / "hccn-tls-g.txt"))
    assert ac.hccn_tls("n1", _per_npu(off), False, 8).status is Status.OK  # type: ignore[arg-type]
    on = {**off, "enabled": True}
    mismatch = ac.hccn_tls("n1", _per_npu(on), False, 8)  # type: ignore[arg-type]
    assert (mismatch.status, mismatch.runbook) == (Status.FAIL, "npu-tls")
    assert mismatch.observed == "tls switch 1 on NPU 0,1,2,3,4,5,6,7"
    _runbook_ok(mismatch)
    one = ac.hccn_tls("n1", {**_per_npu(off), 2: on}, False, 8)  # type: ignore[dict-item]
    assert one.observed == "tls switch 1 on NPU 2"
    assert ac.hccn_tls("n1", {}, False, 8).status is Status.UNKNOWN


# --------------------------------------------------------------------------------------------
# Preflight tier: roles/preflight findings -> results


def test_preflight_findings_map_to_results() -> None:
    from ironserve.health.preflight import to_results
    from ironserve.roles.preflight.checks import check_disk, check_host_limits, check_npu_tls
    from ironserve.rules.limits import UNLIMITED

    findings = check_disk("n1", "/data/models", 0, _planned_disk(16 * GIB))
    findings += check_host_limits(
        "n1", parse_memlock(["8192"]), UNLIMITED, None, 64 * 1024**2, None, True
    )
    off = parse_hccn_tls(_lines(OUTPUTS / "hccn-tls-g.txt"))
    findings += check_npu_tls("n1", {0: {**off, "enabled": True}}, False)
    results = {r.check: r for r in to_results("n1", findings, ascend=True)}
    assert (results["preflight.disk"].status, results["preflight.disk"].runbook) == (
        Status.FAIL,
        "disk-full",
    )
    assert results["preflight.memlock"].status is Status.WARN  # a note: roles/base fixes it
    assert results["preflight.npu-tls"].status is Status.FAIL
    assert results["preflight.os"].status is Status.OK
    assert all(r.tier == "preflight" for r in results.values())
    assert all(r.runbook in RUNBOOKS for r in results.values() if r.runbook)


def test_xid63_alone_is_a_warning_and_48_is_fatal() -> None:
    from ironserve.facts.nvidia import parse_xid_lines
    from ironserve.health import node_checks

    remap = node_checks.gpu_xid("n1", parse_xid_lines(_lines(FACTS / "dmesg-T-xid63-short.txt")))
    assert (remap.status, remap.observed) == (Status.WARN, "xid 63")
    mixed = parse_xid_lines(_lines(FACTS / "dmesg-iso-xid48-63-94.txt"))
    assert node_checks.gpu_xid("n1", mixed).status is Status.FAIL


# --------------------------------------------------------------------------------------------
# Runner: a node whose every probe times out is UNKNOWN on every check, never OK


class _Data:
    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def dict(self) -> dict[str, object]:
        return self.values

    def get(self, key: str) -> object:
        return self.values.get(key)


class _SlowHost:
    """A connected host whose probes all time out (``which`` answers: the tools are there)."""

    def __init__(self, kind: str) -> None:
        self.name, self.connected = "n1", False
        self.data = _Data({"accelerator_kind": kind, "accelerator_count": 8})

    def connect(self, show_errors: bool = False) -> None:
        self.connected = True

    def get_fact(self, cls: type, *args: object, **kwargs: object) -> object:
        if cls.__name__ == "Which":
            return "/usr/bin/tool"
        raise TimeoutError("command timed out after 20 s")


@pytest.mark.parametrize("kind", ["h100-80g", "ascend-910b-64g", "va16-128g"])
def test_probes_that_time_out_are_unknown_never_ok(kind: str) -> None:
    from ironserve.health.runner import _facts, role_models

    models = role_models()
    results = _facts(object(), _SlowHost(kind), None, models)
    assert results, kind
    statuses = {r.check: r.status for r in results}
    # docker answered `which` but not `docker info`: UNKNOWN too
    assert set(statuses.values()) == {Status.UNKNOWN}, statuses
    assert "host.container_runtime" in statuses and "host.disk" in statuses
