"""apt installs that change nothing when the packages are there: pinned versions, holds, and an
``apt-get update`` limited to one source list (a vendor repository) when it is all we need.

.. code:: python

    apt.packages(name="Install the NVIDIA driver", packages=["nvidia-driver-580-server-open"],
                 source_list="/etc/apt/sources.list.d/ironserve-nvidia.list", hold=True)
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any, TypedDict

from pyinfra.api.command import StringCommand
from pyinfra.api.facts import FactBase
from pyinfra.api.operation import operation
from pyinfra.context import host


class Selection(TypedDict):
    version: str
    installed: bool
    held: bool


def parse_selections(lines: list[str]) -> dict[str, Selection]:
    """Parse the tab-separated ``dpkg-query -W`` lines of :class:`DebSelections`: package,
    version, status abbreviation (``ii``, ``hi``, ``rc`` ...) and the wanted state."""
    out: dict[str, Selection] = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        name, version, abbrev, want = (p.strip() for p in parts[:4])
        name = name.split(":", 1)[0]
        out[name] = Selection(
            version=version,
            installed=abbrev[1:2] == "i",
            held=want == "hold",
        )
    return out


class DebSelections(FactBase[dict[str, Selection]]):
    """Installed/held state and version of every package dpkg knows.

    .. code:: python

        {"nvidia-fabricmanager-580": {"version": "580.95.05-1", "installed": True, "held": True}}
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "dpkg-query"

    def command(self) -> str:
        return (
            "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\t"
            "${db:Status-Want}\\n' 2>/dev/null || true"
        )

    @staticmethod
    def default() -> dict[str, Selection]:
        return {}

    def process(self, output: list[str]) -> dict[str, Selection]:
        return parse_selections(output)


def _spec(item: str) -> tuple[str, str | None]:
    name, _, version = item.partition("=")
    return name, version or None


def update_command(source_list: str | None) -> str:
    """``apt-get update``, limited to ``source_list`` when given (a vendor repository we just
    added: the distribution's lists stay as they are)."""
    if source_list is None:
        return "apt-get update -q"
    return (
        "apt-get update -q -o Dir::Etc::sourcelist="
        + shlex.quote(source_list)
        + " -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
    )


INSTALL = (
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
    " --allow-change-held-packages --allow-downgrades"
    " -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
)


def missing_packages(packages: list[str], selections: dict[str, Selection]) -> list[str]:
    """The specs (``name`` or ``name=version``) that are not installed as asked."""
    missing = []
    for item in packages:
        name, version = _spec(item)
        have = selections.get(name)
        if have is None or not have["installed"] or (version and have["version"] != version):
            missing.append(item)
    return missing


@operation()
def packages(
    packages: list[str],
    source_list: str | None = None,
    update: bool = True,
    hold: bool = False,
) -> Generator[str | StringCommand, None, None]:
    """Install ``packages`` (``name`` or ``name=version``) unless they are installed as asked.

    + packages: package specs
    + source_list: refresh only this sources.list file before installing (a vendor repository)
    + update: run ``apt-get update`` before installing (only when something is missing)
    + hold: ``apt-mark hold`` the packages, so no upgrade moves them
    """
    selections: dict[str, Selection] = host.get_fact(DebSelections)
    missing = missing_packages(list(packages), selections)
    names = [_spec(item)[0] for item in packages]
    unheld = [n for n in names if n not in selections or not selections[n]["held"]] if hold else []
    if not missing and not unheld:
        host.noop(f"{', '.join(names)} installed" + (" and held" if hold else ""))
        return
    if missing:
        if update:
            yield update_command(source_list)
        yield StringCommand(INSTALL, *(shlex.quote(m) for m in missing))
    if hold and (unheld or missing):
        yield StringCommand("apt-mark", "hold", *(shlex.quote(n) for n in names))
