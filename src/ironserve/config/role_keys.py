"""Data keys of ironserve's roles, so validation knows them.

Each role (``ironserve.roles.<role>``, a subpackage) declares its data keys in its ``defaults``
module (``DEFAULTS``, role-prefixed: ``nvidia_driver_branch``, ``base_sysctl`` ...). The loader
accepts those keys like its own and still suggests the closest one for a misspelt key. The roles
are the package's own, found with importlib wherever ironserve is installed.

A defaults module may also declare ``DOWNLOADS`` (artifact -> ``version_key``, ``source_key``,
``file``): what the role fetches, so validation can ask for its checksum (config/downloads.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ironserve.errors import InputError, Problem

ROLES_PACKAGE = "ironserve.roles"


def role_names() -> tuple[str, ...]:
    """Every role: the subpackages of ``ironserve.roles``, sorted."""
    # Imported here, not at module level: the roles import the loader (through the Plan).
    package = importlib.import_module(ROLES_PACKAGE)
    return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg))


@dataclass(frozen=True)
class RoleData:
    """One role's declared data: its DEFAULTS and its DOWNLOADS (empty when it fetches none)."""

    name: str
    defaults: dict[str, Any]
    downloads: dict[str, dict[str, str]]


def _role_data(role: str) -> RoleData:
    name = f"{ROLES_PACKAGE}.{role}.defaults"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == name:
            return RoleData(role, {}, {})  # a role without data keys
        raise
    defaults = getattr(module, "DEFAULTS", None)
    if not isinstance(defaults, dict):
        raise InputError([Problem(name, "DEFAULTS", "must be a dict of data keys")])
    downloads = getattr(module, "DOWNLOADS", {})
    if not isinstance(downloads, dict):
        raise InputError([Problem(name, "DOWNLOADS", "must be a dict of artifacts")])
    return RoleData(role, dict(defaults), dict(downloads))


@lru_cache(maxsize=1)
def roles_data() -> tuple[RoleData, ...]:
    """Every role's DEFAULTS and DOWNLOADS."""
    return tuple(_role_data(role) for role in role_names())


def role_defaults() -> dict[str, Any]:
    """Every role's DEFAULTS merged (a fresh dict): what provisioning uses where the inventory
    sets nothing."""
    return {key: value for role in roles_data() for key, value in role.defaults.items()}


def role_keys() -> frozenset[str]:
    """Every data key declared by the roles."""
    return frozenset(key for role in roles_data() for key in role.defaults)
