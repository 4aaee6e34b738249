"""``ironserve health --tier node`` on provisioned labs of its own (real SSH, simulated hardware):
healthy is all OK (exit 0); each planted fault turns exactly the expected checks FAIL on exactly
that node, with the runbook id; ``lab heal`` returns all OK.

One lab per class, taken down when the class ends (never two at once): a 2-node gpu2 lab for the
GPU, disk and node faults; a 1-node h100x8 lab (NVSwitches, 8 IB HCAs) for fabricmanager-down
and ib-port-down; a 1-node ascend910bx8 lab for the npu-* faults. Each is provisioned by
deploys/provision.py, as a site is; and a 1-node va16-iommu lab (the IOMMU on, which
provisioning refuses) whose vastai.iommu check fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import BIN, ROOT, lab_in

pytestmark = pytest.mark.lab

# fault kind -> {check that must FAIL: its runbook}. xid-79 is "fell off the bus": the GPU is
# also gone from nvidia-smi, so the count fails with it, as on real hardware.
GPU2_FAULTS = {
    "xid-79": {"nvidia.xid": "gpu-xid", "nvidia.gpu_count": "gpu-missing"},
    "gpu-missing": {"nvidia.gpu_count": "gpu-missing"},
    # an uncorrectable (double-bit) error is also Xid 48 in the kernel log, fatal by itself
    "ecc-uncorrectable": {"nvidia.ecc": "gpu-ecc", "nvidia.xid": "gpu-xid"},
    "row-remap-pending": {"nvidia.row_remap": "gpu-row-remap"},
    "disk-full": {"host.disk": "disk-full"},
    "node-down": {"host.reachable": "node-down"},
}
# fault kind -> checks that WARN with it: a recorded row remap is Xid 63 (a warning by itself)
GPU2_WARNS = {"row-remap-pending": {"nvidia.xid"}}
H100_FAULTS = {
    "fabricmanager-down": {"nvidia.fabric_manager": "fabric-manager"},
    "ib-port-down": {"fabric.ib_port": "ib-port"},
}
ASCEND_FAULTS = {
    "npu-alarm": {"ascend.npu_health": "npu-alarm"},
    "npu-link-down": {"ascend.hccn_link": "npu-link"},
    "npu-tls-mismatch": {"ascend.hccn_tls": "npu-tls"},
}


def _run(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(lab_dir)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _provisioned_lab(
    tmp_path_factory: pytest.TempPathFactory, nodes: int, profile: str
) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp(f"health-{profile}")
    with lab_in(directory, nodes, profile, real_vllm=False):
        args = [str(BIN / "pyinfra"), "-y", "inventories/lab.py", "deploys/provision.py"]
        done = _run(directory, *args)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        yield directory


def _health(lab_dir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = _run(
        lab_dir, str(BIN / "ironserve"), "health", "-i", "inventories/lab.py", "--json", *extra
    )
    assert done.stdout, done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def _not_ok(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (r["node"], r["check"], r["status"], r["observed"])
        for r in report["results"]
        if r["status"] != "OK"
    ]


def _failing(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (r["node"], r["check"], r["runbook"]) for r in report["results"] if r["status"] == "FAIL"
    }


def _assert_healthy(lab_dir: Path, nodes: list[str]) -> dict[str, Any]:
    code, report = _health(lab_dir, "--tier", "node")
    assert (code, _not_ok(report)) == (0, [])
    assert report["nodes"] == nodes
    return report


def _fault_then_heal(
    lab_dir: Path, node: str, fault: str, want: dict[str, str], warns: set[str] | None = None
) -> None:
    planted = _run(lab_dir, str(BIN / "ironserve"), "lab", "fault", node, fault)
    assert planted.returncode == 0, planted.stderr
    try:
        code, report = _health(lab_dir, "--tier", "node")
        assert code == 2, _not_ok(report)
        assert _failing(report) == {(node, check, book) for check, book in want.items()}
        # everything else is still OK (or the named WARNs): the fault shows up nowhere else
        others = {
            (r[0], r[1], r[2])
            for r in _not_ok(report)
            if (r[0], r[1]) not in {(node, c) for c in want}
        }
        assert others == {(node, check, "WARN") for check in warns or set()}
    finally:
        healed = _run(lab_dir, str(BIN / "ironserve"), "lab", "heal", node)
    assert healed.returncode == 0, healed.stderr
    code, report = _health(lab_dir, "--tier", "node")
    assert (code, _not_ok(report)) == (0, [])


@pytest.fixture(scope="class")
def gpu2_lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from _provisioned_lab(tmp_path_factory, 2, "gpu2")


@pytest.fixture(scope="class")
def h100_lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from _provisioned_lab(tmp_path_factory, 1, "h100x8")


@pytest.fixture(scope="class")
def ascend_lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from _provisioned_lab(tmp_path_factory, 1, "ascend910bx8")


@pytest.fixture(scope="class")
def iommu_lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("health-va16-iommu")
    with lab_in(directory, 1, "va16-iommu", real_vllm=False):
        # roles/vastai stops the run on an IOMMU that is on (the card would not work)
        done = _run(
            directory, str(BIN / "pyinfra"), "-y", "inventories/lab.py", "deploys/provision.py"
        )
        assert done.returncode != 0 and "IOMMU" in done.stdout + done.stderr
        yield directory


class TestGpu2:
    def test_healthy_lab_is_ok(self, gpu2_lab: Path) -> None:
        report = _assert_healthy(gpu2_lab, ["gpu2-1", "gpu2-2"])
        checks = {r["check"] for r in report["results"]}
        assert {
            "host.disk",
            "host.shm",
            "host.memlock",
            "host.time_sync",
            "host.container_runtime",
            "nvidia.driver",
            "nvidia.persistence",
            "nvidia.pcie",
            "nvidia.throttle",
        } <= checks
        # no NVSwitch and no HCA on gpu2: neither is checked
        assert not checks & {"nvidia.fabric_manager", "fabric.ib_port"}

    def test_preflight_tier_is_read_only_and_notes_the_lab_limits(self, gpu2_lab: Path) -> None:
        code, report = _health(gpu2_lab, "--tier", "preflight")
        # lab nodes are containers with no NTP client (a note); memlock is capped by this machine,
        # and the lab's containers get that cap, so it is enough for preflight as for the node
        # tier (ironserve.rules.limits)
        assert code == 1, _not_ok(report)
        assert {(r[1], r[2]) for r in _not_ok(report)} == {("preflight.time", "WARN")}
        assert {r["tier"] for r in report["results"]} == {"preflight"}
        _assert_healthy(gpu2_lab, ["gpu2-1", "gpu2-2"])

    @pytest.mark.parametrize("fault", sorted(GPU2_FAULTS))
    def test_fault_fails_exactly_its_check_then_heals(self, gpu2_lab: Path, fault: str) -> None:
        _fault_then_heal(gpu2_lab, "gpu2-2", fault, GPU2_FAULTS[fault], GPU2_WARNS.get(fault))


class TestH100:
    def test_healthy_lab_is_ok(self, h100_lab: Path) -> None:
        report = _assert_healthy(h100_lab, ["h100x8-1"])
        checks = {r["check"] for r in report["results"]}
        assert {"nvidia.fabric_manager", "fabric.ib_port"} <= checks

    @pytest.mark.parametrize("fault", sorted(H100_FAULTS))
    def test_fault_fails_exactly_its_check_then_heals(self, h100_lab: Path, fault: str) -> None:
        _fault_then_heal(h100_lab, "h100x8-1", fault, H100_FAULTS[fault])


class TestAscend:
    def test_healthy_lab_is_ok(self, ascend_lab: Path) -> None:
        report = _assert_healthy(ascend_lab, ["ascend910bx8-1"])
        checks = {r["check"] for r in report["results"]}
        assert {
            "ascend.npu_health",
            "ascend.hccn_link",
            "ascend.hccn_ip",
            "ascend.hccn_tls",
        } <= checks

    @pytest.mark.parametrize("fault", sorted(ASCEND_FAULTS))
    def test_fault_fails_exactly_its_check_then_heals(self, ascend_lab: Path, fault: str) -> None:
        _fault_then_heal(ascend_lab, "ascend910bx8-1", fault, ASCEND_FAULTS[fault])


class TestVastaiIommu:
    def test_iommu_on_fails_exactly_the_iommu_check(self, iommu_lab: Path) -> None:
        code, report = _health(iommu_lab, "--tier", "node")
        assert code == 2, _not_ok(report)
        assert _failing(report) == {("va16-iommu-1", "vastai.iommu", "vastai-devices")}
        assert [r[1] for r in _not_ok(report)] == ["vastai.iommu"]
        assert "vastai.devices" in {r["check"] for r in report["results"]}
