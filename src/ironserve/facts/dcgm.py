"""``dcgmi diag -r N -j`` as data, in DCGM 3.x and 4.x keys (../shared/reference/outputs/dcgm.md 3):

- 3.x: root ``"DCGM GPU Diagnostic"``; a test's results carry ``gpu_id`` (a string) and
  ``status``; the test's verdict is its results' (``results[0].status`` in gcm's reading);
- 4.x: root ``"DCGM Diagnostic"``; results are entity-based (``entity_group`` ``"GPU"``,
  ``entity_id``) and the test's verdict is ``test_summary.status``.

Statuses are DCGM's words: Pass, Fail, Warn, Skip (``Not Run`` in some builds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

ROOTS = {"DCGM GPU Diagnostic": "3", "DCGM Diagnostic": "4"}
_ORDER = ("Fail", "Warn", "Pass", "Skip")


@dataclass(frozen=True)
class DiagTest:
    category: str
    name: str
    status: str  # the test's verdict
    gpus: dict[int, str] = field(default_factory=dict)  # per-GPU status, where given
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiagReport:
    dcgm: str  # "3" or "4": which key layout
    tests: tuple[DiagTest, ...]

    @property
    def failed(self) -> list[DiagTest]:
        return [t for t in self.tests if t.status == "Fail"]


def _worst(statuses: list[str]) -> str:
    for status in _ORDER:
        if status in statuses:
            return status
    return statuses[0] if statuses else "Skip"


def _gpu(result: dict[str, object]) -> int | None:
    if "gpu_id" in result:  # 3.x: a string
        value = str(result["gpu_id"])
        return int(value) if value.isdigit() else None
    if result.get("entity_group") == "GPU" and "entity_id" in result:  # 4.x
        return int(str(result["entity_id"]))
    return None


def _warnings(result: dict[str, object]) -> list[str]:
    found = []
    for w in result.get("warnings") or []:  # type: ignore[attr-defined]
        found.append(str(w.get("warning", w)) if isinstance(w, dict) else str(w))
    return found


def parse_diag_json(text: str) -> DiagReport:
    """Raises ValueError for text that is not a whole ``dcgmi diag -j`` document."""
    doc = json.loads(text)
    root = next((key for key in ROOTS if key in doc), None)
    if root is None:
        raise ValueError(f"not a dcgmi diag document (keys: {sorted(doc)[:5]})")
    tests = []
    for category in doc[root].get("test_categories", []):
        for test in category.get("tests", []):
            results = [r for r in test.get("results", []) if isinstance(r, dict)]
            gpus = {g: str(r.get("status")) for r in results if (g := _gpu(r)) is not None}
            summary = (test.get("test_summary") or {}).get("status")
            status = str(summary) if summary else _worst([str(r.get("status")) for r in results])
            warns = tuple(w for r in results for w in _warnings(r))
            tests.append(
                DiagTest(str(category.get("category")), str(test.get("name")), status, gpus, warns)
            )
    return DiagReport(ROOTS[root], tuple(tests))
