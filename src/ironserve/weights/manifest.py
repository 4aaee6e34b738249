"""Is a node's copy complete? The quick check a deploy makes every run (manifest present, every
hub file listed with the hub's size and sha256, and on disk with the size and mtime recorded at
verification); `ironserve weights verify` re-hashes instead."""

from __future__ import annotations

from typing import Any

from ironserve.weights.metadata import RepoMeta


def complete(meta: RepoMeta, state: dict[str, Any]) -> bool:
    manifest = state.get("manifest") or {}
    listed = manifest.get("files", {})
    if manifest.get("repo_id") != meta.repo_id:
        return False
    for f in meta.files:
        entry = listed.get(f.path)
        if entry is None or entry.get("size") != f.size:
            return False
        if f.sha256 and entry.get("sha256") != f.sha256:
            return False
        if state.get("stat", {}).get(f.path) != [f.size, entry.get("mtime_ns")]:
            return False
    return True


def missing_bytes(meta: RepoMeta, state: dict[str, Any]) -> int:
    """Bytes this node still has to receive (0 when complete; the staging area counts as held)."""
    if complete(meta, state):
        return 0
    return max(0, meta.total_bytes - int(state.get("staging_bytes", 0)))


def sums_text(entries: dict[str, str]) -> str:
    """SHA256SUMS (``sha256sum -c`` format) from {path: sha256}."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries.items()))
