"""Pins and checksums of what provisioning downloads (config/downloads.py), checked by the
inventory loader before any SSH: exit 2 naming the host and the data key."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError
from typer.testing import CliRunner

from ironserve.cli import app
from ironserve.config.inventory import HostRecord
from ironserve.config.loader import build_cluster
from ironserve.errors import InputError
from ironserve.roles import artifact_sha256
from ironserve.roles.ascend.defaults import DRIVER_VERSION as ASCEND_DRIVER
from ironserve.roles.ascend.defaults import FIRMWARE_VERSION as ASCEND_FIRMWARE
from ironserve.roles.vastai.defaults import DRIVER_VERSION as VASTAI_DRIVER
from tests.deploys import nvidia_node as node
from tests.deploys.test_ascend import GROUP_DATA as ASCEND_GROUP

ROOT = Path(__file__).resolve().parents[2]
SUM = hashlib.sha256(b"installer").hexdigest()
VASTAI: dict[str, Any] = {
    "node_role": "head",
    "node_ip": "10.40.0.10",
    "model_id": "deepseek-ai/DeepSeek-R1-0528",
    "model_weights_dir": "/weights",
    "engine_kind": "vllm_vacc",
    "accelerator_kind": "va16-128g",
    "accelerator_count": 8,
    "vastai_installer_url": "http://mirror.example/vastai/",
}


def problems(data: dict[str, Any], name: str = "n1") -> list[tuple[str, str, str]]:
    try:
        build_cluster([HostRecord(name, ("all",), data)])
    except InputError as error:
        return [(p.host, p.field, p.message) for p in error.problems]
    return []


def nvidia(**extra: Any) -> dict[str, Any]:
    return {**{k: v for k, v in node.HOST_DATA.items() if not k.startswith("fake_")}, **extra}


def test_an_installer_needs_the_sha256_of_its_configured_version() -> None:
    (problem,) = problems(VASTAI, "va16-0")
    host, field, message = problem
    assert (host, field) == ("va16-0", "vastai_checksums")
    assert f"no sha256 for the driver {VASTAI_DRIVER}" in message
    assert f"vastai_driver_install_{VASTAI_DRIVER}.run" in message
    assert problems({**VASTAI, "vastai_checksums": {"driver": {VASTAI_DRIVER: SUM}}}) == []
    # Another version configured: its own sum is needed.
    other = {**VASTAI, "vastai_checksums": {"driver": {VASTAI_DRIVER: SUM}}}
    assert "driver 3.4.0" in problems({**other, "vastai_driver_version": "3.4.0"})[0][2]


def test_no_source_no_download_no_sum_needed() -> None:
    # Without vastai_installer_url nothing is fetched (the role asks for the URL itself).
    assert problems({k: v for k, v in VASTAI.items() if k != "vastai_installer_url"}) == []


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("abc", "'abc' is not a sha256"),
        (SUM[:-1] + "g", "is not a sha256"),
        (None, "None is not a sha256"),
    ],
)
def test_a_malformed_sha256_names_host_and_field(value: Any, shown: str) -> None:
    data = {**VASTAI, "vastai_checksums": {"driver": {VASTAI_DRIVER: value}}}
    ((host, field, message),) = problems(data, "va16-0")
    assert (host, field) == ("va16-0", "vastai_checksums")
    assert message.startswith(f"driver {VASTAI_DRIVER}: ") and shown in message


def test_checksum_tables_are_checked_on_every_node() -> None:
    # A malformed table is bad input wherever it is set, even on a node that downloads nothing.
    got = problems(nvidia(ascend_checksums={"driver": "not-a-table"}))
    assert got == [("n1", "ascend_checksums", "driver: must map version -> sha256")]


def test_ascend_needs_both_installers_sums() -> None:
    data = {
        **ASCEND_GROUP,
        "node_role": "head",
        "node_ip": "10.197.90.10",
        "npu_device_ips": [f"10.197.91.{10 + i}" for i in range(8)],
        "ascend_checksums": {"driver": {ASCEND_DRIVER: SUM}},
    }
    ((host, field, message),) = problems(data)
    assert (host, field) == ("n1", "ascend_checksums") and f"firmware {ASCEND_FIRMWARE}" in message
    both = {"driver": {ASCEND_DRIVER: SUM}, "firmware": {ASCEND_FIRMWARE: SUM.upper()}}
    assert problems({**data, "ascend_checksums": both}) == []


def test_nvidia_driver_version_belongs_to_the_branch() -> None:
    assert problems(nvidia()) == []
    assert problems(nvidia(nvidia_driver_branch="570", nvidia_driver_version="570.133.20-1")) == []
    ((host, field, message),) = problems(nvidia(nvidia_driver_version="1:570.133.20-1"))
    assert (host, field) == ("n1", "nvidia_driver_version")
    assert "1:570.133.20-1 is not of branch 580" in message
    assert problems(nvidia(nvidia_driver_version=None))[0][1] == "nvidia_driver_version"


def test_the_cuda_key_fingerprint_is_checked_where_the_key_is_fetched() -> None:
    assert problems(nvidia(nvidia_apt_source="cuda")) == []
    bad = nvidia(nvidia_apt_source="cuda", nvidia_apt_key_fingerprint="3bf863cc")
    assert problems(bad) == [
        (
            "n1",
            "nvidia_apt_key_fingerprint",
            "'3bf863cc' is not an OpenPGP fingerprint (40 hex digits)",
        )
    ]


def test_validate_exits_2_naming_host_and_field(tmp_path: Path) -> None:
    site = tmp_path / "inventories" / "site.py"
    site.parent.mkdir()
    data = {**VASTAI, "vastai_checksums": {"driver": {VASTAI_DRIVER: "deadbeef"}}}
    site.write_text(f"hosts = [('va16-0', {data!r})]\n")
    result = CliRunner().invoke(app, ["validate", "-i", str(site)])
    assert result.exit_code == 2
    assert (
        f"va16-0: vastai_checksums: driver {VASTAI_DRIVER}: 'deadbeef' is not a sha256"
        in result.stderr
    )


def test_the_role_reads_the_sum_and_refuses_a_run_without_one() -> None:
    host = SimpleNamespace(
        name="va16-0", data={"vastai_checksums": {"driver": {"3.3.0": SUM.upper()}}}
    )
    assert artifact_sha256(host, "vastai", "driver", "3.3.0") == SUM
    with pytest.raises(
        DeployError, match=r"va16-0: no sha256 for the driver 3.4.0 in vastai_checksums"
    ):
        artifact_sha256(host, "vastai", "driver", "3.4.0")
