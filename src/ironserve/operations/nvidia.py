"""NVIDIA steps pyinfra has no operation for: the fabric manager pinned to the installed
driver's exact version (and held), and persistence mode.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator, Mapping

from pyinfra.api.command import StringCommand
from pyinfra.api.operation import operation
from pyinfra.context import host

from ironserve.facts.nvidia import NvidiaGpu, NvidiaGpus
from ironserve.operations.apt import (
    INSTALL,
    DebSelections,
    Selection,
    update_command,
)
from ironserve.operations.apt_versions import upstream_version


def fabricmanager_matches(
    selections: Mapping[str, Selection], driver: str, fabricmanager: str
) -> bool:
    """Whether ``fabricmanager`` is installed at the installed ``driver``'s version, and held."""
    have_driver = selections.get(driver)
    have_fm = selections.get(fabricmanager)
    if have_driver is None or have_fm is None:
        return False
    if not (have_driver["installed"] and have_fm["installed"] and have_fm["held"]):
        return False
    return upstream_version(have_fm["version"]) == upstream_version(have_driver["version"])


def fabricmanager_script(driver: str, fabricmanager: str, source_list: str | None) -> str:
    """Shell that installs the fabric manager version equal to the installed driver's, and holds
    it; fails naming both versions when the repository lacks it (never a near match)."""
    d, fm = shlex.quote(driver), shlex.quote(fabricmanager)
    return (
        f"set -e; v=$(dpkg-query -W -f='${{Version}}' {d}); v=${{v#*:}}; v=${{v%-*}}; "
        f"{update_command(source_list)} >/dev/null; "
        f'fmv=$(apt-cache madison {fm} | awk -v u="$v-" \'{{ if (index($3, u) == 1) '
        "{ print $3; exit } }'); "
        f'if [ -z "$fmv" ]; then echo no {fm} "$v in the apt sources: the fabric '
        f'manager must match driver $v exactly; mirror it and run again" >&2; exit 1; fi; '
        f"apt-mark unhold {fm} >/dev/null 2>&1 || true; "
        f'{INSTALL} {fm}"=$fmv"; apt-mark hold {fm}'
    )


@operation()
def fabricmanager(
    branch: str, driver_package: str, source_list: str | None = None
) -> Generator[str | StringCommand, None, None]:
    """Install ``nvidia-fabricmanager-<branch>`` at exactly the installed driver's version and
    hold it (skew between the two breaks NVSwitch systems).

    + branch: the driver branch, e.g. ``580``
    + driver_package: the driver package whose installed version the fabric manager must match
    + source_list: refresh only this sources.list before resolving the version
    """
    name = f"nvidia-fabricmanager-{branch}"
    selections: dict[str, Selection] = host.get_fact(DebSelections)
    if fabricmanager_matches(selections, driver_package, name):
        host.noop(f"{name} matches the driver and is held")
        return
    yield fabricmanager_script(driver_package, name, source_list)


@operation()
def persistence_mode() -> Generator[str, None, None]:
    """``nvidia-smi -pm 1`` unless every GPU already has persistence mode on."""
    gpus: list[NvidiaGpu] = host.get_fact(NvidiaGpus)
    if gpus and all(g["persistence_mode"] for g in gpus):
        host.noop("persistence mode is on")
        return
    yield "nvidia-smi -pm 1"
