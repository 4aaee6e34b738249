"""Role data keys (ironserve.roles.<role>.defaults) are known to validation; misspelt ones get a
suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironserve.config.inventory import HostRecord
from ironserve.config.loader import build_cluster
from ironserve.config.role_keys import role_defaults, role_keys, role_names
from ironserve.errors import InputError
from tests.deploys import nvidia_node as node

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "src" / "ironserve" / "roles"


def _record(**extra: object) -> HostRecord:
    data = {k: v for k, v in node.HOST_DATA.items() if not k.startswith("fake_")}
    return HostRecord("n1", ("all",), {**data, **extra})


def test_every_role_of_the_package_declares_its_keys() -> None:
    assert set(role_names()) == {p.parent.name for p in ROLES.glob("*/defaults.py")}
    keys = role_keys()
    assert {"nvidia_driver_branch", "base_sysctl", "preflight_disk_margin"} <= keys
    assert {"container_runtime_registry_mirrors", "fabric_packages"} <= keys


def test_role_keys_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The roles are the package's: validating from any folder knows their keys."""
    monkeypatch.chdir(tmp_path)
    build_cluster([_record(nvidia_driver_branch="570", nvidia_driver_version="570.133.20-1")])
    with pytest.raises(InputError, match="did you mean 'nvidia_driver_branch'"):
        build_cluster([_record(nvidia_driver_brach="570")])


def test_role_defaults_are_the_roles_values() -> None:
    from ironserve.roles.base.defaults import DEFAULTS as BASE
    from ironserve.roles.nvidia.defaults import DEFAULTS as NVIDIA

    defaults = role_defaults()
    assert defaults["base_sysctl"] == BASE["base_sysctl"]
    assert defaults["nvidia_driver_branch"] == NVIDIA["nvidia_driver_branch"]
    defaults["base_sysctl"] = {}  # a copy: the caller's edits reach no one else
    assert role_defaults()["base_sysctl"] == BASE["base_sysctl"]


def test_role_keys_validate() -> None:
    build_cluster(
        [
            _record(
                nvidia_driver_branch="570",
                nvidia_driver_version="570.133.20-1",
                base_time_sync="chrony",
            )
        ]
    )


def test_misspelt_role_key_gets_did_you_mean() -> None:
    with pytest.raises(InputError) as error:
        build_cluster([_record(nvidia_driver_brach="570")])
    assert "nvidia_driver_brach" in str(error.value)
    assert "did you mean 'nvidia_driver_branch'" in str(error.value)
