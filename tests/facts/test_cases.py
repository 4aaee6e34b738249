"""pyinfra-testing style fact cases: ``cases/<fact name>/<case>.json``, one or more for every
fact of the project (a test finds them all).

Each case gives the fact's keyword arguments, the raw output (inline ``output`` lines, an
``output_fixture`` file, or ``output_parts``: lines and ``{"fixture": name}`` in order, for
facts whose command frames several tool outputs with markers) and the expected ``fact`` value
compared after a JSON round trip (so int dict keys compare as strings, as they would in a JSON
report, and tuple keys as their items joined by spaces). Optional ``command`` and
``requires_command`` are compared exactly.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.facts.conftest import lines
from tests.project_ops import project_facts

CASES = Path(__file__).resolve().parent / "cases"
ALL = sorted(CASES.glob("*/*.json"))


def _fact_class(name: str) -> type:
    module, _, cls = name.rpartition(".")
    fact: type = getattr(importlib.import_module(module), cls)
    assert fact.name == name  # type: ignore[attr-defined]
    return fact


def _keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            " ".join(map(str, k)) if isinstance(k, tuple) else k: _keys(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_keys(v) for v in value]
    return value


def jsonable(value: Any) -> Any:
    """The fact's value as a JSON report would hold it."""
    return json.loads(json.dumps(_keys(value)))


def output_of(case: dict[str, Any]) -> list[str]:
    if "output_fixture" in case:
        return lines(case["output_fixture"])
    if "output_parts" in case:
        out: list[str] = []
        for part in case["output_parts"]:
            out += lines(part["fixture"]) if isinstance(part, dict) else [part]
        return out
    output: list[str] = case["output"]
    return output


def test_every_project_fact_has_a_case() -> None:
    covered = {p.parent.name for p in ALL}
    missing = sorted(set(project_facts()) - covered)
    assert not missing, f"facts without cases under tests/facts/cases/: {missing}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fact_case(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    fact = _fact_class(path.parent.name)()
    kwargs = case.get("kwargs", {})
    if "command" in case:
        assert str(fact.command(**kwargs)) == case["command"]
    if "requires_command" in case:
        assert fact.requires_command(**kwargs) == case["requires_command"]
    assert jsonable(fact.process(output_of(case))) == case["fact"]
