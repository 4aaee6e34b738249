"""Packaged pyinfra deploys, one folder per role (design.md section 3).

Each role exports its ``@deploy`` from ``roles/<role>/__init__.py``, declares its data keys with
defaults in ``defaults.py`` (role-prefixed; ``None`` = must be given) and reads the run's Plan
through :func:`plan_of`; it never recomputes it. ``deploys/provision.py`` composes them.
"""

from __future__ import annotations

import importlib
from typing import Any

from pyinfra import logger
from pyinfra.api.exceptions import DeployError

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.config.downloads import checksums_key, sha256_for
from ironserve.deploy.context import HostPlan, host_plan
from ironserve.errors import InputError

# Vendor roles: module and deploy function, looked up when a node of that vendor is provisioned.
VENDOR_ROLES = {
    "nvidia": ("ironserve.roles.nvidia", "deploy_nvidia"),
    "ascend": ("ironserve.roles.ascend", "deploy_ascend"),
    "vastai": ("ironserve.roles.vastai", "deploy_vastai"),
}

CONTROL_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})

# Seconds a role's fact may take on a node (``du`` of a present checkpoint, ``ray status`` in a
# half-formed cluster included): a hung tool fails the fact and its host, not the whole run.
FACT_TIMEOUT_S = 120


def plan_of(state: Any, host: Any) -> HostPlan:
    """The host's plan; a bad inventory stops the run, listing every problem."""
    try:
        return host_plan(state, host)
    except InputError as error:
        raise DeployError(f"the inventory is not valid:\n{error}") from error


def run_of(state: Any) -> Any:
    """The State object itself: ``from pyinfra import state`` is a context proxy, the same object
    in every run of a process, so per-run caches key on what it wraps."""
    unwrap = getattr(type(state), "_get_module", None)
    return unwrap(state) if unwrap is not None else state


def vendor_of(state: Any, host: Any) -> str:
    return ACCELERATORS[plan_of(state, host).node.accelerator.kind].vendor


def plan_if_vendor(state: Any, host: Any, vendor: str) -> HostPlan | None:
    """The host's plan when its accelerators are ``vendor``'s; else None (logged): a vendor role
    run on another vendor's node does nothing."""
    plan = plan_of(state, host)
    kind = plan.node.accelerator.kind
    if ACCELERATORS[kind].vendor == vendor:
        return plan
    logger.info(f"{host.name}: not a {vendor} node ({kind}); nothing to do")
    return None


def vendor_deploy(vendor: str) -> Any:
    """The vendor role's deploy, or a DeployError saying which role is missing."""
    module_name, function = VENDOR_ROLES[vendor]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise DeployError(
            f"{vendor} nodes need {module_name.replace('.', '/')}/ ({function}), which this "
            "checkout does not have: provision them with a version of ironserve that has it"
        ) from error
    return getattr(module, function)


def is_control_machine(host: Any) -> bool:
    """Whether ``host`` is the machine pyinfra runs on (@local, or SSH to a loopback address)."""
    connector = type(getattr(host, "connector", None)).__name__
    address = host.data.get("ssh_hostname") or host.name
    return connector == "LocalConnector" or host.name == "@local" or address in CONTROL_ADDRESSES


def require(host: Any, key: str) -> Any:
    """``host.data[key]``, failing loudly with the key's name when it is None (must be given)."""
    value = host.data.get(key)
    if value is None:
        raise DeployError(f"{host.name}: data key {key!r} must be given (it has no default)")
    return value


def artifact_sha256(host: Any, role: str, artifact: str, version: str) -> str:
    """The sha256 of ``artifact`` at ``version`` in ``<role>_checksums``; a DeployError naming
    the key when there is none (validation refuses that before any SSH; this guards a run
    that skipped it)."""
    value = sha256_for(host.data, role, artifact, version)
    if value is None:
        key = checksums_key(role)
        raise DeployError(
            f"{host.name}: no sha256 for the {artifact} {version} in {key}: add "
            f"{key}[{artifact!r}][{version!r}]"
        )
    return value
