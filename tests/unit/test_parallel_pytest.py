"""tools/parallel_pytest.py: every test file runs in exactly one group, and no Ray lab starts
beside the real vLLM."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "parallel_pytest", ROOT / "tools/parallel_pytest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _files(paths: list[str]) -> set[Path]:
    """The test files pytest collects from ``paths`` (``--ignore=`` honoured)."""
    ignored = {ROOT / p.removeprefix("--ignore=") for p in paths if p.startswith("--ignore=")}
    found: set[Path] = set()
    for p in (ROOT / p for p in paths if not p.startswith("--")):
        found |= set(p.rglob("test_*.py")) if p.is_dir() else {p}
    return found - ignored


def test_every_test_file_is_in_exactly_one_group() -> None:
    runner = _runner()
    groups = runner.arguments()
    every = set((ROOT / "tests").rglob("test_*.py"))
    seen: list[Path] = [f for paths in groups.values() for f in _files(paths)]
    assert set(seen) == every
    assert len(seen) == len(every)


def test_no_ray_lab_starts_before_the_real_vllm_has_ended() -> None:
    runner = _runner()
    by_name = {g.name: g for g in runner.GROUPS}
    vllm = next(g.name for g in runner.GROUPS if "tests/lab/test_serve.py" in g.paths)
    ray_suites = (
        "tests/lab/test_serve_ray.py",
        "tests/lab/test_runbooks.py",
        "tests/lab/test_infra.py",
    )
    for ray_suite in ray_suites:
        group = next(g for g in runner.GROUPS if ray_suite in g.paths)
        assert vllm in group.after, f"{ray_suite} could start beside the real vLLM"
    assert not by_name[vllm].after  # the longest chain starts at once


def test_no_three_groups_can_run_at_once() -> None:
    """Of any three groups, one waits (directly or through another) for one of the others: three
    at once kept the CPUs 99% busy until a lab node missed its boot deadline."""
    runner = _runner()
    before = {g.name: set(g.after) for g in runner.GROUPS}
    for _ in runner.GROUPS:  # the transitive closure
        for name, waits in before.items():
            before[name] = waits.union(*(before[w] for w in waits))

    def ordered(a: str, b: str) -> bool:
        return a in before[b] or b in before[a]

    for three in itertools.combinations(before, 3):
        pairs = itertools.combinations(three, 2)
        assert any(ordered(a, b) for a, b in pairs), f"{three} could run at once"


def test_labs_that_serve_the_real_model_come_last_in_the_rest_group() -> None:
    """The REST group's labs that wait for the real vLLM's image (a lab brought up without
    ``real_vllm=False``) run after the ones that do not, and the runner names exactly those."""
    runner = _runner()
    rest = next(paths for name, paths in runner.arguments().items() if name == "rest")
    labs = [p for p in rest if p.startswith("tests/lab/")]

    def waits(path: str) -> bool:
        text = (ROOT / path).read_text()
        bring_ups = text.count("lab_in(") + text.count("cluster.up(")
        return bring_ups > text.count("real_vllm=False")

    waiting = [p for p in labs if waits(p)]
    assert waiting == list(runner.REAL_MODEL_LAST)
    assert labs[-len(waiting) :] == waiting
