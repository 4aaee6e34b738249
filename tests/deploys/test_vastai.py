"""roles/vastai on @fake hosts: IOMMU refused with the remedy, install once, devices checked."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from ironserve.roles.vastai import deploy_vastai
from ironserve.roles.vastai.defaults import DEFAULTS, DRIVER_VERSION
from ironserve.roles.vastai.deploy import parse_vasmi_list
from tests.deploys.conftest import FakeRun

HOST = "@fake/va16-0"
SHA256 = hashlib.sha256(b"the Vastai installer").hexdigest()
GROUP_DATA: dict[str, Any] = {
    "model_id": "deepseek-ai/DeepSeek-R1-0528",
    "model_weights_dir": "/weights",
    "engine_kind": "vllm_vacc",
    "accelerator_kind": "va16-128g",
    "accelerator_count": 8,
    "vastai_checksums": {"driver": {DRIVER_VERSION: SHA256}},
    "fake_delay": 0,
    "fake_delay_jitter": 0,
}
MIRROR = "http://mirror.example/vastai/"
RUN = f"vastai_driver_install_{DRIVER_VERSION}.run"
IOMMU_OFF = ["## cmdline BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=off", "## units 0"]
IOMMU_ON = ["## cmdline BOOT_IMAGE=/vmlinuz intel_iommu=on iommu=pt", "## units 8", "## vastai 0"]


def vasmi(cards: int) -> list[str]:
    lines = [
        f"vasmi driver version: {DRIVER_VERSION}",
        "DevID  Card  Die  BusID         Name  Memory    Temp  Status",
    ]
    for card in range(cards):
        for die in range(4):
            index = card * 4 + die
            lines.append(
                f"{index:<7}{card:<6}{die:<5}0000:{card + 1:02x}:00.0  VA16  32768MiB  45C   OK"
            )
    return lines


def run_with(responses: dict[str, Any]) -> FakeRun:
    run = FakeRun(
        [(HOST, {"node_role": "head", "node_ip": "10.40.0.10", "fake_responses": responses})],
        GROUP_DATA,
    )
    return run


@pytest.fixture(autouse=True)
def mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    # The artifact source is inventory data; the deploy's defaults stand in for it here.
    monkeypatch.setitem(DEFAULTS, "vastai_installer_url", MIRROR)


def test_first_run_installs_then_checks_the_devices() -> None:
    run = run_with({"/sys/class/iommu": IOMMU_OFF})
    run.change_after(HOST, "install --setkernelhook", {"vasmi list": vasmi(8)})
    run.prepare(deploy_vastai)
    run.execute()
    assert run.failed() == []
    commands = run.commands(HOST)
    download = [c for c in commands if MIRROR + RUN in c]
    assert len(download) == 1 and SHA256 in download[0]  # verified on the node before use
    installs = [c for c in commands if f"/var/cache/ironserve/vastai/{RUN} install" in c]
    assert len(installs) == 1 and "--setkernelhook" in installs[0]
    assert "intel_iommu=off" in installs[0]  # the remedy, should the installer refuse
    check = [c for c in commands if c.startswith("n=$(vasmi list")]
    assert len(check) == 1 and '[ "$n" -ge 8 ]' in check[0]
    assert commands.index(installs[0]) < commands.index(check[0])


def test_installed_driver_changes_nothing() -> None:
    run = run_with({"/sys/class/iommu": IOMMU_OFF, "vasmi list": vasmi(8)})
    run.prepare(deploy_vastai)
    run.execute()
    assert run.failed() == []
    commands = run.commands(HOST)
    assert not [c for c in commands if "install" in c or "curl" in c or "wget" in c]


def test_missing_cards_are_reported() -> None:
    run = run_with({"/sys/class/iommu": IOMMU_OFF, "vasmi list": vasmi(7)})
    with pytest.raises(DeployError, match="vasmi lists 7 Vastai cards, the inventory says 8"):
        run.prepare(deploy_vastai)


def test_an_installer_without_its_sha256_stops_before_any_command() -> None:
    run = FakeRun(
        [(HOST, {"node_role": "head", "node_ip": "10.40.0.10", "fake_responses": {}})],
        {**GROUP_DATA, "vastai_checksums": {"driver": {"3.2.0": SHA256}}},
    )
    with pytest.raises(DeployError) as info:
        run.prepare(deploy_vastai)
    message = str(info.value)
    assert f"{HOST}: vastai_checksums: no sha256 for the driver {DRIVER_VERSION}" in message
    assert RUN in message
    assert run.commands(HOST) == []


def test_iommu_on_stops_before_any_change_with_the_remedy() -> None:
    run = run_with({"/sys/class/iommu": IOMMU_ON})
    with pytest.raises(DeployError) as info:
        run.prepare(deploy_vastai)
    message = str(info.value)
    assert message.startswith(f"{HOST}: the IOMMU is enabled")
    assert "intel_iommu=on iommu=pt" in message
    assert "intel_iommu=off" in message and "amd_iommu=off" in message and "reboot" in message
    assert not [c for c in run.commands(HOST) if "install" in c]


def test_parse_vasmi_list() -> None:
    assert parse_vasmi_list("\n".join(vasmi(8))) == (DRIVER_VERSION, 8)
    assert parse_vasmi_list("") == (None, 0)
    assert parse_vasmi_list("vasmi: no vastai device found, please check the driver") == (None, 0)
