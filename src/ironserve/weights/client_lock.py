"""The hub client's lock: every package a node's hub-client venv holds, pinned with ``==`` and the
sha256 of every file the index publishes for that version (pip's requirements format, read with
``pip install --require-hashes --no-deps -r``).

One source of the pins: roles/weights uploads the lock and installs from it on a seed node, the
lab downloads the wheels it names for its node image and installs them the same way
(``--no-index``), so every lab build proves the lock complete. The lock is package data
(``data/hub-client.txt``), written by ``tools/lock_hub_client.py`` from ``data/hub-client.in``
(the top-level requirements); docs/weights.md says how to refresh it.

A line may carry an environment marker (a dependency only some Pythons need, or a version only
older Pythons get): ``Pin.applies`` evaluates it for a node's environment, as pip does there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

LOCK_NAME = "hub-client.txt"
INPUT_NAME = "hub-client.in"
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")

# The lab node's interpreter (Debian bookworm's python3, x86_64): the marker environment its
# pip evaluates the lock with, and the one the lab downloads wheels for.
LAB_NODE_ENV: dict[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.2",
    "python_version": "3.11",
    "sys_platform": "linux",
}


class LockError(ValueError):
    """A lock that is not one ``name==version [; marker]`` with sha256 hashes per entry."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str
    marker: str | None
    hashes: tuple[str, ...]

    def applies(self, env: Mapping[str, str]) -> bool:
        """Whether a node with marker environment ``env`` installs this line."""
        return self.marker is None or Marker(self.marker).evaluate(dict(env))

    def line(self) -> str:
        """The entry in requirements format (one ``--hash`` per continuation line)."""
        head = f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")
        return " \\\n".join([head, *(f"    --hash=sha256:{h}" for h in self.hashes)])


def packaged(name: str = LOCK_NAME) -> str:
    """A file of the package's ``weights/data`` (the lock, or its input)."""
    return resources.files("ironserve.weights").joinpath(f"data/{name}").read_text()


def read(path: Path | str | None = None) -> tuple[str, list[Pin]]:
    """The lock's text and pins: ``path`` (an operator's own lock) or the packaged one."""
    text = Path(path).expanduser().read_text() if path is not None else packaged()
    return text, parse(text)


def _entries(text: str) -> Iterable[str]:
    """Logical lines: backslash continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\r?\n", " ", text)
    for raw in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            yield line


def parse(text: str) -> list[Pin]:
    """Every entry of a lock; a line without ``==``, without a sha256 or with another option
    is refused (pip's --require-hashes refuses such a file too, but only on the node)."""
    pins: list[Pin] = []
    for line in _entries(text):
        spec, _, options = line.partition(" --")
        options = "--" + options if options else ""
        hashes = tuple(_HASH.findall(options))
        if _HASH.sub("", options).strip():
            raise LockError(f"{spec}: only --hash=sha256:... options belong in the lock")
        try:
            req = Requirement(spec)
        except InvalidRequirement as error:
            raise LockError(f"{spec!r}: {error}") from None
        pinned = [s for s in req.specifier if s.operator == "=="]
        if len(req.specifier) != 1 or not pinned or "*" in pinned[0].version or req.extras:
            raise LockError(f"{spec}: not pinned with == to one version")
        if not hashes:
            raise LockError(f"{spec}: no --hash=sha256")
        marker = str(req.marker) if req.marker else None
        pins.append(Pin(canonicalize_name(req.name), pinned[0].version, marker, hashes))
    if not pins:
        raise LockError("the lock names no package")
    return pins


def pins_for(pins: Iterable[Pin], env: Mapping[str, str]) -> dict[str, str]:
    """name -> version a node with ``env`` installs (one line per name applies there)."""
    chosen: dict[str, str] = {}
    for pin in pins:
        if pin.applies(env):
            if pin.name in chosen:
                raise LockError(f"{pin.name}: two lines of the lock apply to one node")
            chosen[pin.name] = pin.version
    return chosen


def requirements_for(pins: Iterable[Pin], env: Mapping[str, str]) -> str:
    """The lines that apply to ``env``, markers dropped: what pip downloads for such a node
    from another machine (pip evaluates markers for the Python it runs on, not the target)."""
    lines = [Pin(p.name, p.version, None, p.hashes).line() for p in pins if p.applies(env)]
    return "\n".join(lines) + "\n"


def outdated(
    pins: Iterable[Pin], env: Mapping[str, str], installed: Mapping[str, str]
) -> list[str]:
    """The locked packages a venv lacks or holds at another version (``installed``: its
    distributions, name -> version, names in any spelling)."""
    have: dict[str, str] = {canonicalize_name(n): v for n, v in installed.items()}
    return sorted(
        f"{name}=={version}"
        for name, version in pins_for(pins, env).items()
        if not _same_version(have.get(name), version)
    )


def _same_version(found: str | None, pinned: str) -> bool:
    try:
        return found is not None and Version(found) == Version(pinned)
    except InvalidVersion:
        return found == pinned
