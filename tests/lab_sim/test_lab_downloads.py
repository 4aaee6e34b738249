"""The lab's repository and what provisioning verifies against it: the installers' sha256 known
where they are built (and the same on every build), handed to the roles in the lab inventory's
data, a tampered installer rebuilt, and the NVIDIA driver offered at the exact pinned version."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from ironserve.config.downloads import download_problems, driver_in_branch, sha256_for
from ironserve.config.role_keys import roles_data
from ironserve.lab import packages
from ironserve.lab.packages import RepositoryInfo, build_repository
from ironserve.roles.nvidia.defaults import DRIVER_BRANCH, DRIVER_VERSION

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> RepositoryInfo:
    return build_repository(tmp_path_factory.mktemp("repo"))


def test_installer_sums_are_those_of_the_served_files_on_every_build(
    repo: RepositoryInfo, tmp_path: Path
) -> None:
    served = {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in repo.run_files.items()}
    assert repo.run_sha256 == served == packages.installer_checksums()
    again = build_repository(tmp_path / "again")
    assert again.rebuilt and again.run_sha256 == served  # deterministic: same bytes, same sums


def test_the_lab_data_gives_every_download_its_sum(repo: RepositoryInfo) -> None:
    data = packages.role_checksums(repo.run_sha256)
    roles = roles_data()
    fetching = [r for r in roles if r.downloads]
    assert {r.name for r in fetching} == {"ascend", "vastai"}
    for role in fetching:
        merged = {**role.defaults, **data}
        for artifact, spec in role.downloads.items():
            version = str(merged[spec["version_key"]])
            run = spec["file"].format(version=version)
            assert sha256_for(merged, role.name, artifact, version) == repo.run_sha256[run]
    source = {"ascend_installer_url": "http://apt/", "vastai_installer_url": "http://apt/"}
    for vendor in ("ascend", "vastai"):
        assert download_problems("n1", {**data, **source}, vendor, roles) == []
    # Without the recorded sums (a lab state from before), validation names the key.
    (problem,) = download_problems("n1", source, "vastai", roles)
    assert problem.field == "vastai_checksums"


def test_a_tampered_installer_is_rebuilt(repo: RepositoryInfo) -> None:
    path = repo.run_files[packages.VASTAI_DRIVER_RUN]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    again = build_repository(repo.path)
    assert again.rebuilt
    assert hashlib.sha256(path.read_bytes()).hexdigest() == repo.run_sha256[path.name]


def test_the_repository_offers_the_pinned_driver_version(repo: RepositoryInfo) -> None:
    assert packages.NVIDIA_DEB_VERSION == DRIVER_VERSION  # the roles' default pin
    assert driver_in_branch(packages.NVIDIA_DEB_VERSION, DRIVER_BRANCH)
    for name in (
        f"nvidia-driver-{DRIVER_BRANCH}-server-open",
        f"nvidia-utils-{DRIVER_BRANCH}-server",
    ):
        assert repo.packages[name] == packages.NVIDIA_DEB_VERSION
        assert (
            f"Package: {name}\nVersion: {packages.NVIDIA_DEB_VERSION}\n"
            in (repo.path / "Packages").read_text()
        )
