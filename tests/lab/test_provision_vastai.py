"""roles/vastai end to end on the lab: a tampered installer at the lab's installer URL is refused
by its sha256 (naming the file and the node, nothing installed); the real one installs once and
then changes nothing; va16-iommu is refused with the remedy before any change (the kernel log's
"DMAR: IOMMU enabled" gives it away before any Vastai driver ran)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.lab import cluster, packages
from tests.lab.conftest import BIN, ROOT, Node

pytestmark = pytest.mark.lab

DEPLOY = "tests/lab/deploys/vastai.py"


@pytest.fixture
def lab_of(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    made: list[Path] = []

    def up(profile: str) -> Any:
        directory = tmp_path_factory.mktemp(profile)
        made.append(directory)
        return cluster.up(
            nodes=1, profile=profile, light=True, directory=directory, real_vllm=False
        ), directory

    yield up
    for directory in made:
        cluster.down(directory)


def _pyinfra(state: Any, directory: Path) -> tuple[int, str]:
    done = subprocess.run(
        [
            str(BIN / "pyinfra"),
            "-y",
            "inventories/lab.py",
            DEPLOY,
            "--data",
            f"vastai_installer_url={state.apt_repository}",
        ],
        cwd=ROOT,
        env={**os.environ, "IRONSERVE_LAB_DIR": str(directory)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, done.stdout + done.stderr


def _refused_when_tampered(state: Any, directory: Path) -> None:
    """One byte changed in the installer the lab serves: the download is refused on the node by
    the sha256 the lab inventory carries; the installer never runs and leaves no file."""
    installer = directory / "apt" / packages.VASTAI_DRIVER_RUN
    good = installer.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    installer.write_bytes(bytes(bad))
    try:
        code, output = _pyinfra(state, directory)
    finally:
        installer.write_bytes(good)
    node = Node(state, state.nodes[0])
    assert code != 0, output[-3000:]
    refusal = [line for line in output.splitlines() if "refused, nothing installed" in line]
    assert refusal, output[-3000:]
    assert node.name in refusal[0] and packages.VASTAI_DRIVER_RUN in refusal[0]
    assert state.installer_sha256[packages.VASTAI_DRIVER_RUN] in refusal[0]
    _, left = node.run(
        "ls -A /var/cache/ironserve/vastai 2>/dev/null; command -v vasmi || echo no-vasmi"
    )
    assert left.split() == ["no-vasmi"]


def test_va16_installs_once(lab_of: Any) -> None:
    state, directory = lab_of("va16")
    _refused_when_tampered(state, directory)
    code, first = _pyinfra(state, directory)
    assert code == 0, first[-3000:]
    assert "Install the Vastai driver" in first
    assert "Check that the Vastai devices are present" in first
    code, second = _pyinfra(state, directory)
    assert code == 0, second[-3000:]
    assert "Vastai driver" in second and "is installed, 8 cards" in second
    assert "Install the Vastai driver" not in second
    node = Node(state, state.nodes[0])
    _, listing = node.run("vasmi list")
    assert "VA16" in listing


def test_va16_with_iommu_is_refused_with_the_remedy(lab_of: Any) -> None:
    state, directory = lab_of("va16-iommu")
    node = Node(state, state.nodes[0])
    for _ in range(2):
        code, output = _pyinfra(state, directory)
        assert code != 0, output[-3000:]
        assert "the IOMMU is enabled" in output and "DMAR: IOMMU enabled" in output
        assert "intel_iommu=off" in output and "reboot" in output
        assert "--> Beginning operation run" not in output  # stopped while preparing
        assert (
            node.run("ls /var/cache/ironserve/vastai; command -v vasmi", check=False)[1].count(
                "No such"
            )
            == 1
        )
