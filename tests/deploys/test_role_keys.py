"""Role data keys (roles/*/defaults.py) are known to validation; misspelt ones get a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironserve.config.inventory import HostRecord
from ironserve.config.loader import build_cluster
from ironserve.config.role_keys import role_keys, roles_dir
from ironserve.errors import InputError
from tests.deploys import nvidia_node as node

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "lab.py"


def _record(**extra: object) -> HostRecord:
    data = {k: v for k, v in node.HOST_DATA.items() if not k.startswith("fake_")}
    return HostRecord("n1", ("all",), {**data, **extra})


def test_roles_folder_is_found_beside_the_inventory_folder() -> None:
    assert roles_dir(INVENTORY) == ROOT / "roles"
    keys = role_keys(INVENTORY)
    assert {"nvidia_driver_branch", "base_sysctl", "preflight_disk_margin"} <= keys
    assert {"container_runtime_registry_mirrors", "fabric_packages"} <= keys


def test_role_keys_validate() -> None:
    build_cluster(
        [
            _record(
                nvidia_driver_branch="570",
                nvidia_driver_version="570.133.20-1",
                base_time_sync="chrony",
            )
        ],
        str(INVENTORY),
    )


def test_misspelt_role_key_gets_did_you_mean() -> None:
    with pytest.raises(InputError) as error:
        build_cluster([_record(nvidia_driver_brach="570")], str(INVENTORY))
    assert "nvidia_driver_brach" in str(error.value)
    assert "did you mean 'nvidia_driver_branch'" in str(error.value)


def test_defaults_are_loaded_by_path(tmp_path: Path) -> None:
    (tmp_path / "inventories").mkdir()
    role = tmp_path / "roles" / "demo"
    role.mkdir(parents=True)
    (role / "defaults.py").write_text('DEFAULTS = {"demo_setting": None}\n')
    inventory = tmp_path / "inventories" / "x.py"
    assert role_keys(inventory) == {"demo_setting"}


def test_no_roles_folder_means_no_role_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert role_keys(tmp_path / "inventories" / "x.py") == frozenset()
