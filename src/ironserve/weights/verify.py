"""Each node's copy against the hub's metadata: complete, missing and corrupt files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ironserve.weights.metadata import RepoMeta


@dataclass
class NodeReport:
    node: str
    dest: str
    complete: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing and not self.corrupt

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "dest": self.dest,
            "status": "complete" if self.ok else "incomplete",
            "complete": len(self.complete),
            "missing": self.missing,
            "corrupt": self.corrupt,
            "error": self.error,
        }


def classify(node: str, dest: str, meta: RepoMeta, found: dict[str, Any]) -> NodeReport:
    """found: {path: [size, sha256, git_sha1] or None} as the node hashed them."""
    report = NodeReport(node, dest)
    for f in meta.files:
        got = found.get(f.path)
        if got is None:
            report.missing.append(f.path)
            continue
        size, sha256, sha1 = got
        bad = size != f.size or (f.sha256 and sha256 != f.sha256)
        bad = bad or bool(not f.sha256 and f.git_sha1 and sha1 != f.git_sha1)
        (report.corrupt if bad else report.complete).append(f.path)
    return report
