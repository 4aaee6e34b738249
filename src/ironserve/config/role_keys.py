"""Data keys of ironserve's roles, so validation knows them.

Each role (``ironserve.roles.<role>``, a subpackage) declares its data keys in its ``defaults``
module, as a typed model (a ``deploy.role_data.RoleData`` subclass, its fields typed with
``config/values.py``) with ``DEFAULTS`` derived from it (role-prefixed: ``nvidia_driver_branch``,
``base_sysctl`` ...). The loader accepts those keys like its own, validates their values with the
role's model (:func:`role_data_problems`) and still suggests the closest one for a misspelt key.
The roles are the package's own, found with importlib wherever ironserve is installed.

A defaults module may also declare ``DOWNLOADS`` (artifact -> ``version_key``, ``source_key``,
``file``): what the role fetches, so validation can ask for its checksum (config/downloads.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ironserve.deploy.role_data import RoleData as RoleModel
from ironserve.errors import InputError, Problem

ROLES_PACKAGE = "ironserve.roles"


def role_names() -> tuple[str, ...]:
    """Every role: the subpackages of ``ironserve.roles``, sorted."""
    # Imported here, not at module level: the roles import the loader (through the Plan).
    package = importlib.import_module(ROLES_PACKAGE)
    return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg))


@dataclass(frozen=True)
class RoleData:
    """One role's declared data: its DEFAULTS, its DOWNLOADS (empty when it fetches none) and
    its typed model (``deploy.role_data.RoleData``), which validates the inventory's values."""

    name: str
    defaults: dict[str, Any]
    downloads: dict[str, dict[str, str]]
    model: type[RoleModel] | None = None


def _model_of(module: Any) -> type[RoleModel] | None:
    """The RoleData model the defaults module declares (its one subclass defined there)."""
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, RoleModel)
        and value.__module__ == module.__name__
    ]
    if len(found) > 1:
        names = ", ".join(m.__name__ for m in found)
        raise InputError([Problem(module.__name__, "RoleData", f"one model per role ({names})")])
    return found[0] if found else None


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
    return RoleData(role, dict(defaults), dict(downloads), _model_of(module))


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


def role_data_problems(host: str, data: dict[str, Any]) -> list[Problem]:
    """Every role key of ``host`` typed and ranged by its role's model (a key left out, or set to
    None where None means "not set", takes the role's default); one problem per bad key."""
    problems: list[Problem] = []
    for role in roles_data():
        if role.model is None:
            continue
        try:
            role.model.from_data(host, data)
        except InputError as error:
            problems += error.problems
    return problems
