"""File names from a hub's listing are untrusted: the rule every name must pass before anything is
downloaded or any node is touched (the CLI and the weights role both read the listing through
``metadata.hub_metadata``, which applies it).

A name is a relative POSIX path inside the repository: not empty, no absolute path, no ``..`` (nor
``.`` or empty) component, no backslash, no control character (a newline would split a line of
SHA256SUMS), and none of the names ironserve itself writes in the weights folder.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# What node_pull writes beside the weights (weights/node_pull.py: the manifest, the stream's
# progress and failure files), and the hub client's own
# state under staging, which the fan-out's rsync leaves out: a listed file must not be either.
RESERVED = (
    "ironserve-manifest.json",
    "SHA256SUMS",
    ".ironserve-manifest.json.tmp",
    ".SHA256SUMS.tmp",
    ".ironserve-ready",
    ".ironserve-ready.tmp",
    ".ironserve-failed",
    ".ironserve-failed.tmp",
)
RESERVED_TOP = ".cache"


def unsafe_reason(name: object) -> str | None:
    """Why ``name`` cannot be a file of the repository, or None when it can."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "holds a control character"
    if "\\" in name:
        return "holds a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "climbs out of the repository (a '..' component)"
    if any(p in ("", ".") for p in parts):
        return "is not a normalised path (an empty or '.' component)"
    if name in RESERVED or parts[0] == RESERVED_TOP:
        return "collides with a file ironserve writes in the weights folder"
    return None


def first_unsafe(names: Iterable[object]) -> tuple[object, str, int] | None:
    """(the first unsafe name, why, how many are unsafe in all), or None when all are safe."""
    bad = [(n, why) for n in names if (why := unsafe_reason(n)) is not None]
    if not bad:
        return None
    return bad[0][0], bad[0][1], len(bad)
