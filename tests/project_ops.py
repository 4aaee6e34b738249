"""The project's own pyinfra operations and facts, found by walking its packages (the lab's
node-side simulators aside), so a new one without test cases is noticed."""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from types import ModuleType

from pyinfra.api.facts import FactBase

PACKAGES = ("ironserve",)
SKIP = ("ironserve.lab",)  # the lab: simulators and docker plumbing, no facts or operations


def _modules() -> list[ModuleType]:
    found = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if info.name.startswith(SKIP):
                continue
            found.append(importlib.import_module(info.name))
    return found


@functools.cache
def project_operations() -> tuple[str, ...]:
    """Dotted names of every ``@operation`` the project defines (an operation wraps a generator
    of commands; a ``@deploy`` wraps a plain function)."""
    names = set()
    for module in _modules():
        for attr, value in vars(module).items():
            inner = getattr(value, "_inner", None)
            if (
                inner is not None
                and inspect.isgeneratorfunction(inner)
                and inner.__module__ == module.__name__
            ):
                names.add(f"{module.__name__}.{attr}")
    return tuple(sorted(names))


@functools.cache
def project_facts() -> tuple[str, ...]:
    """Names (``FactBase.name``: module and class) of every fact the project defines."""
    names = set()
    for module in _modules():
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, FactBase)
                and value.__module__ == module.__name__
            ):
                names.add(value.name)
    return tuple(sorted(names))
