"""Data keys of the project's roles, so validation knows them.

Each role declares its data keys in ``roles/<role>/defaults.py`` (``DEFAULTS``, role-prefixed:
``nvidia_driver_branch``, ``base_sysctl`` ...). The loader accepts those keys like its own and
still suggests the closest one for a misspelt key. The roles folder is the one beside the
inventory's folder (``inventories/x.py`` -> ``roles/``), else ``roles/`` in the working directory.
Defaults files are loaded by path: nothing is added to ``sys.path``.
"""

from __future__ import annotations

import importlib.util
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


def _load_defaults(path: Path) -> dict[str, Any]:
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
    return dict(defaults)


@lru_cache(maxsize=8)
def _keys_in(directory: Path) -> frozenset[str]:
    keys: set[str] = set()
    for path in sorted(directory.glob("*/defaults.py")):
        keys.update(_load_defaults(path))
    return frozenset(keys)


def role_keys(inventory: str | Path | None = None) -> frozenset[str]:
    """Every data key declared by the project's roles (empty when there is no roles folder)."""
    directory = roles_dir(inventory)
    return _keys_in(directory.resolve()) if directory is not None else frozenset()
