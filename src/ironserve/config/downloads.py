"""What provisioning downloads and installs is pinned and verifiable, checked before any SSH.

Kubespray-style checksums: each role that fetches files declares them (``DOWNLOADS`` in its
defaults file: artifact -> its version key, its source key, its file name) and keeps their sums
in ``<role>_checksums`` (artifact -> version -> sha256). For every node, with the roles'
defaults under the inventory's data:

- every ``*_checksums`` entry is a sha256 (64 hex digits);
- every artifact the node's vendor role will fetch (its source is set) has a sha256 for the
  configured version;
- NVIDIA nodes: ``nvidia_driver_version`` belongs to ``nvidia_driver_branch``, and the CUDA
  repository key's fingerprint is 40 hex digits where that key is fetched.

Each problem names the host and the data key; the node verifies the file itself
(``ironserve.operations.download``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ironserve.catalog.accelerators import ACCELERATORS
from ironserve.config.role_keys import RoleData
from ironserve.errors import Problem
from ironserve.operations.apt_versions import upstream_version

SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
FINGERPRINT = re.compile(r"^[0-9a-fA-F]{40}$")
# A role named after a vendor (roles/nvidia, roles/ascend, roles/vastai) runs on its nodes only.
VENDORS = frozenset(a.vendor for a in ACCELERATORS.values())


def checksums_key(role: str) -> str:
    return f"{role}_checksums"


def sha256_for(data: Mapping[str, Any], role: str, artifact: str, version: str) -> str | None:
    """The sha256 of ``artifact`` at ``version`` in ``<role>_checksums`` (lower case), or None."""
    table = data.get(checksums_key(role))
    entry = table.get(artifact) if isinstance(table, Mapping) else None
    value = entry.get(str(version)) if isinstance(entry, Mapping) else None
    return value.lower() if isinstance(value, str) and SHA256.match(value) else None


def driver_in_branch(version: str, branch: str) -> bool:
    """Whether an apt version of the driver belongs to ``branch`` (``580.95.05-1`` to 580)."""
    return upstream_version(version).split(".")[0] == str(branch)


def _shape_problems(host: str, key: str, table: Any) -> list[Problem]:
    if not isinstance(table, Mapping):
        return [Problem(host, key, "must map artifact -> version -> sha256")]
    problems = []
    for artifact, versions in table.items():
        if not isinstance(versions, Mapping):
            problems.append(Problem(host, key, f"{artifact}: must map version -> sha256"))
            continue
        for version, value in versions.items():
            if not (isinstance(value, str) and SHA256.match(value)):
                problems.append(
                    Problem(
                        host,
                        key,
                        f"{artifact} {version}: {value!r} is not a sha256 (64 hex digits)",
                    )
                )
    return problems


def _missing_sums(host: str, data: Mapping[str, Any], role: RoleData) -> list[Problem]:
    problems = []
    key = checksums_key(role.name)
    for artifact, spec in role.downloads.items():
        if not data.get(spec["source_key"]):
            continue  # nothing is fetched without a source (the role says it must be given)
        version = str(data.get(spec["version_key"]))
        if sha256_for(data, role.name, artifact, version) is None:
            file = spec.get("file", "{version}").format(version=version)
            problems.append(
                Problem(
                    host,
                    key,
                    f"no sha256 for the {artifact} {version} ({file}, set by "
                    f"{spec['version_key']}): add {key}[{artifact!r}][{version!r}] from the "
                    "vendor's published checksums",
                )
            )
    return problems


def _nvidia_problems(host: str, data: Mapping[str, Any]) -> list[Problem]:
    problems = []
    branch = str(data.get("nvidia_driver_branch") or "")
    version = data.get("nvidia_driver_version")
    if not version:
        problems.append(
            Problem(host, "nvidia_driver_version", "must be given: the driver's exact apt version")
        )
    elif branch and not driver_in_branch(str(version), branch):
        problems.append(
            Problem(
                host,
                "nvidia_driver_version",
                f"{version} is not of branch {branch} (nvidia_driver_branch): pin a "
                f"{branch}.x version, or change the branch",
            )
        )
    if data.get("nvidia_apt_source") == "cuda":
        fingerprint = data.get("nvidia_apt_key_fingerprint")
        if not (isinstance(fingerprint, str) and FINGERPRINT.match(fingerprint)):
            problems.append(
                Problem(
                    host,
                    "nvidia_apt_key_fingerprint",
                    f"{fingerprint!r} is not an OpenPGP fingerprint (40 hex digits)",
                )
            )
    return problems


def effective_data(data: Mapping[str, Any], roles: Iterable[RoleData]) -> dict[str, Any]:
    """The roles' defaults with the inventory's data over them (what a role reads)."""
    merged: dict[str, Any] = {}
    for role in roles:
        merged.update(role.defaults)
    merged.update(data)
    return merged


def download_problems(
    host: str, data: Mapping[str, Any], vendor: str | None, roles: Iterable[RoleData]
) -> list[Problem]:
    """Every problem with the pins and checksums of ``host`` (see the module's list).

    ``vendor``: the node's accelerator vendor; a vendor role's downloads count on its nodes only.
    """
    roles = tuple(roles)
    merged = effective_data(data, roles)
    problems: list[Problem] = []
    for role in roles:
        key = checksums_key(role.name)
        if key in merged:
            problems += _shape_problems(host, key, merged[key])
    if problems:
        return problems
    for role in roles:
        if role.downloads and (role.name not in VENDORS or role.name == vendor):
            problems += _missing_sums(host, merged, role)
    if vendor == "nvidia" and any(r.name == "nvidia" for r in roles):
        problems += _nvidia_problems(host, merged)
    return problems
