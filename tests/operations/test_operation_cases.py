"""Every custom operation of the project against its ``<op>/<case>.json`` cases (harness.py):
arguments and facts in, commands out, and a second call with the converged facts yields none."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.operations.harness import CASES, load, run
from tests.project_ops import project_operations

ALL = sorted(CASES.glob("*/*.json"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_operation_case(path: Path) -> None:
    case = load(path)
    name = path.parent.name
    commands, host = run(name, case, case["facts"])
    assert commands == case["commands"]
    assert set(host.asked) == set(case["facts"]), "the case declares facts the operation never read"
    if not commands:
        assert host.noops, "an operation that yields nothing says why (host.noop)"
        if "noop" in case:
            assert host.noops == [case["noop"]]
        return
    if "no_converge" in case:
        assert case["no_converge"], "say why the commands cannot converge"
        return
    again, host = run(name, case, {**case["facts"], **case["converged_facts"]})
    assert again == [], "the second call, with the facts the commands produce, changes nothing"
    assert host.noops


def test_every_custom_operation_has_cases() -> None:
    covered = {p.parent.name for p in ALL}
    missing = sorted(set(project_operations()) - covered)
    assert not missing, f"operations without cases under tests/operations/: {missing}"
    both = {p.parent.name for p in ALL if load(p)["commands"]}
    assert sorted(set(project_operations()) - both) == [], "each operation: a case with commands"
