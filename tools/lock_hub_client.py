#!/usr/bin/env python3
"""Write the hub client's lock (src/ironserve/weights/data/hub-client.txt) from its top-level
requirements (src/ironserve/weights/data/hub-client.in).

To refresh it (new hub client versions, or a dependency's fix):

1. edit ``hub-client.in`` (``huggingface_hub==X``, ``modelscope==Y``);
2. with uv on the PATH (a throwaway venv: ``python3 -m venv /tmp/uv && /tmp/uv/bin/pip install
   uv``), from the checkout's root::

       PATH=/tmp/uv/bin:$PATH PYTHONPATH=src .venv/bin/python tools/lock_hub_client.py

3. commit both files. The next lab build downloads the new wheels by their hashes and installs
   them with ``--require-hashes --no-index`` (a new node image), which proves the lock; nodes
   whose hub-client venv differs from it are reinstalled by roles/weights on the next pull.

How: the closure is resolved once for every node Python at the same time (``uv pip compile
--universal`` from ``--python-version`` 3.10 up: Ubuntu 22.04's 3.10, Debian 12's 3.11, Ubuntu
24.04's 3.12, x86_64 and aarch64 alike), a dependency or version only some of them get carrying
its environment marker. pip's own resolver cannot do this from one machine: it evaluates
dependency markers for the Python it runs on, whatever ``--python-version`` says (so a 3.11
machine misses 3.10's ``tomli`` and pins a ``filelock`` 3.10 cannot install). Every version's
sha256 are then read from the index's simple API in its JSON form (PEP 691: what pip reads; the
``/pypi/<name>/<version>/json`` API is not reachable from every machine): one ``--hash`` for
each file published for that version, every wheel (all platforms and Pythons) and the sdist, so
the same lock installs on every node. ``--index-url`` reads another index (a PyPI mirror).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)

from ironserve.weights.client_lock import INPUT_NAME, LOCK_NAME, Pin, parse

DATA = Path(__file__).resolve().parents[1] / "src" / "ironserve" / "weights" / "data"
INDEX = "https://pypi.org/simple"
OLDEST_PYTHON = "3.10"  # Ubuntu 22.04's; 3.11 (Debian 12) and 3.12 (Ubuntu 24.04) above it
HEADER = """\
# The hub client's venv on a node: every package, pinned, with the sha256 of every file the index
# publishes for that version (pip install --require-hashes --no-deps -r this file).
# Written by tools/lock_hub_client.py from hub-client.in: do not edit; refresh it as its
# docstring says.
"""


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # type: ignore[import-not-found]

        return [uv.find_uv_bin()]
    except ImportError:
        sys.exit("uv is needed (see this script's docstring): not on the PATH nor importable")


def resolve(requirements: Path, index: str) -> list[Requirement]:
    """The universal closure: one requirement per name and marker branch, pinned with ==."""
    out = subprocess.run(
        [
            *_uv(),
            *("pip", "compile", str(requirements), "--universal", "--no-config", "--quiet"),
            *("--python-version", OLDEST_PYTHON, "--index-url", index),
            *("--no-header", "--no-annotate", "--no-strip-markers"),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "UV_NO_CACHE": "1"},
    ).stdout
    lines = [line.split("#")[0].strip() for line in out.splitlines()]
    return [Requirement(line) for line in lines if line]


def _version_of(filename: str, name: str) -> str | None:
    """The version a published file is of (None: another project's, or not a dist name)."""
    try:
        if filename.endswith(".whl"):
            found, version, _, _ = parse_wheel_filename(filename)
        else:
            found, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return str(version) if found == name else None


def published_sha256(index: str, name: str, version: str) -> tuple[str, ...]:
    """sha256 of every file of ``name==version`` on the index (PEP 691 JSON), sorted."""
    request = urllib.request.Request(
        f"{index.rstrip('/')}/{name}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        files = json.load(answer)["files"]
    wanted = canonicalize_version(version)
    sums = {
        f["hashes"]["sha256"]
        for f in files
        if (found := _version_of(f["filename"], name)) is not None
        and canonicalize_version(found) == wanted
    }
    if not sums:
        sys.exit(f"{name}=={version}: the index lists no file of that version")
    return tuple(sorted(sums))


def lock(requirements: Path, index: str) -> str:
    pins = []
    for req in resolve(requirements, index):
        (spec,) = req.specifier
        name = canonicalize_name(req.name)
        marker = str(req.marker) if req.marker else None
        pins.append(Pin(name, spec.version, marker, published_sha256(index, name, spec.version)))
    text = HEADER + "".join(pin.line() + "\n" for pin in pins)
    parse(text)  # the format the roles and the lab read
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-url", default=INDEX)
    parser.add_argument("--check", action="store_true", help="exit 1 if the lock is not current")
    args = parser.parse_args()
    text = lock(DATA / INPUT_NAME, args.index_url)
    target = DATA / LOCK_NAME
    if args.check:
        current = target.exists() and target.read_text() == text
        print(f"{target}: {'current' if current else 'out of date'}")
        sys.exit(0 if current else 1)
    target.write_text(text)
    pins = parse(text)
    print(f"{target}: {len(pins)} pins, {sum(len(p.hashes) for p in pins)} sha256")


if __name__ == "__main__":
    main()
