"""pyinfra-testing style fact cases: ``cases/<fact name>/<case>.json``.

Each case gives the fact's keyword arguments, the raw output (inline ``output`` lines or an
``output_fixture`` file) and the expected ``fact`` value compared after a JSON round trip (so
int dict keys compare as strings, as they would in a JSON report). Optional ``command`` and
``requires_command`` are compared exactly.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.facts.conftest import lines

CASES = Path(__file__).resolve().parent / "cases"
ALL = sorted(CASES.glob("*/*.json"))


def _fact_class(name: str) -> type:
    module, _, cls = name.rpartition(".")
    fact: type = getattr(importlib.import_module(module), cls)
    assert fact.name == name  # type: ignore[attr-defined]
    return fact


def test_there_are_cases() -> None:
    assert len(ALL) >= 8


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fact_case(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    fact = _fact_class(path.parent.name)()
    kwargs = case.get("kwargs", {})
    if "command" in case:
        assert str(fact.command(**kwargs)) == case["command"]
    if "requires_command" in case:
        assert fact.requires_command(**kwargs) == case["requires_command"]
    output = lines(case["output_fixture"]) if "output_fixture" in case else case["output"]
    assert json.loads(json.dumps(fact.process(output))) == case["fact"]
