"""Data keys of ironserve's roles, so validation knows them.

Each role (``ironserve.roles.<role>``, a subpackage) declares its data keys in its ``defaults``
module (``DEFAULTS``, role-prefixed: ``nvidia_driver_branch``, ``base_sysctl`` ...). The loader
accepts those keys like its own and still suggests the closest one for a misspelt key. The roles
are the package's own, found with importlib wherever ironserve is installed.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import Any

from ironserve.errors import InputError, Problem

ROLES_PACKAGE = "ironserve.roles"


def role_names() -> tuple[str, ...]:
    """Every role: the subpackages of ``ironserve.roles``, sorted."""
    # Imported here, not at module level: the roles import the loader (through the Plan).
    package = importlib.import_module(ROLES_PACKAGE)
    return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg))


def _defaults_of(role: str) -> dict[str, Any]:
    name = f"{ROLES_PACKAGE}.{role}.defaults"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == name:
            return {}  # a role without data keys
        raise
    defaults = getattr(module, "DEFAULTS", None)
    if not isinstance(defaults, dict):
        raise InputError([Problem(name, "DEFAULTS", "must be a dict of data keys")])
    return dict(defaults)


@lru_cache(maxsize=1)
def _all_defaults() -> tuple[tuple[str, Any], ...]:
    return tuple(item for role in role_names() for item in _defaults_of(role).items())


def role_defaults() -> dict[str, Any]:
    """Every role's DEFAULTS merged (a fresh dict): what provisioning uses where the inventory
    sets nothing."""
    return dict(_all_defaults())


def role_keys() -> frozenset[str]:
    """Every data key declared by the roles."""
    return frozenset(key for key, _ in _all_defaults())
