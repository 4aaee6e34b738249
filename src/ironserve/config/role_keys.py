"""Data keys of the project's roles, so validation knows them.

Each role declares its data keys in ``roles/<role>/defaults.py`` (``DEFAULTS``, role-prefixed:
``nvidia_driver_branch``, ``base_sysctl`` ...). The loader accepts those keys like its own and
still suggests the closest one for a misspelt key. The roles folder is the one beside the
inventory's folder (``inventories/x.py`` -> ``roles/``), else ``roles/`` in the working directory.
Defaults files are loaded by path: nothing is added to ``sys.path``.

A defaults file may also declare ``DOWNLOADS`` (artifact -> ``version_key``, ``source_key``,
``file``): what the role fetches, so validation can ask for its checksum (config/downloads.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ironserve.errors import InputError, Problem


def roles_dir(inventory: str | Path | None = None) -> Path | None:
    """The project's ``roles/`` folder for ``inventory``, or None when there is none."""
    candidates = []
    if inventory is not None:
        candidates.append(Path(inventory).resolve().parent.parent / "roles")
    candidates.append(Path.cwd() / "roles")
    return next((c for c in candidates if c.is_dir()), None)


@dataclass(frozen=True)
class RoleData:
    """One role's declared data: its DEFAULTS and its DOWNLOADS (empty when it fetches none)."""

    name: str
    defaults: dict[str, Any]
    downloads: dict[str, dict[str, str]]


def _load_defaults(path: Path) -> dict[str, Any]:
    return _load_role(path).defaults


def _load_role(path: Path) -> RoleData:
    name = f"_ironserve_role_defaults_{path.parent.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError([Problem(str(path), "DEFAULTS", "cannot be loaded")])
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a broken defaults file is the project's bug: say where
        raise InputError([Problem(str(path), "DEFAULTS", f"cannot be loaded: {error}")]) from error
    defaults = getattr(module, "DEFAULTS", None)
    if not isinstance(defaults, dict):
        raise InputError([Problem(str(path), "DEFAULTS", "must be a dict of data keys")])
    downloads = getattr(module, "DOWNLOADS", {})
    if not isinstance(downloads, dict):
        raise InputError([Problem(str(path), "DOWNLOADS", "must be a dict of artifacts")])
    return RoleData(path.parent.name, dict(defaults), dict(downloads))


@lru_cache(maxsize=8)
def _roles_in(directory: Path) -> tuple[RoleData, ...]:
    return tuple(_load_role(path) for path in sorted(directory.glob("*/defaults.py")))


@lru_cache(maxsize=8)
def _keys_in(directory: Path) -> frozenset[str]:
    return frozenset(key for role in _roles_in(directory) for key in role.defaults)


def roles_data(inventory: str | Path | None = None) -> tuple[RoleData, ...]:
    """Every role's DEFAULTS and DOWNLOADS (empty when there is no roles folder)."""
    directory = roles_dir(inventory)
    return _roles_in(directory.resolve()) if directory is not None else ()


def role_keys(inventory: str | Path | None = None) -> frozenset[str]:
    """Every data key declared by the project's roles (empty when there is no roles folder)."""
    directory = roles_dir(inventory)
    return _keys_in(directory.resolve()) if directory is not None else frozenset()
