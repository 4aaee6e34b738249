"""Run the whole test suite as pytest processes, some side by side (`make test`).

Most of the lab suites' wall time is waiting (image pulls, SSH round trips, Ray noticing a dead
node), but on a 2-core machine the real vLLM loading and serving across three nodes is CPU-bound,
and beside it the Ray stand-in clusters (a GCS, raylets and agents per node) miss their heartbeats
and the readiness waits time out. So GROUPS are pytest processes that start as soon as the groups
they wait for (``after``) have ended: the real vLLM and everything that runs no Ray lab (unit,
golden, simulated, provisioning and health labs) start at once; the runbooks' and the serving
Ray labs follow the real vLLM, testinfra's Ray lab follows the rest. pytest-xdist cannot split
them (its workers clash with pyinfra's gevent monkey-patching). Every lab a test starts is its
own (own folder, subnet, ports), and image builds take machine-wide locks (the real vLLM's its
own). The group marked REST gets every test file the other groups do not name, so no test is
left out (each file is in exactly one group, checked here).

    .venv/bin/python tools/parallel_pytest.py [pytest args...]

Each group's output goes to a log under $IRONSERVE_TEST_LOGS (default: a temporary folder);
a group's tail is printed when it ends, with its wall time and its slowest test files (from a
JUnit report beside the log); the run ends with its wall time and how busy the machine's CPUs
were (/proc/stat), the figures to plan the groups by. Exit 0 only when every group passed
(pytest exit 0: a group that collects nothing exits 5 and fails the run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REST = "REST"


@dataclass(frozen=True)
class Group:
    name: str
    paths: tuple[str, ...]
    after: tuple[str, ...] = ()


GROUPS = (
    Group("real vLLM", ("tests/lab/test_serve.py", "tests/lab/test_real_vllm_parser.py")),
    Group("rest", (REST,)),
    # Never more than two groups at once: with three (the Ray labs in two groups beside the
    # rest) the CPUs ran 99% busy for minutes and a runbook lab's node did not boot in 180 s.
    # The runbooks and the serving Ray labs follow the real vLLM; testinfra's Ray lab the rest,
    # so that both chains end together (cold, before: the serving Ray labs, after the rest,
    # ran 5.5 min alone at 45% CPU).
    Group(
        "Ray labs",
        ("tests/lab/test_runbooks.py", "tests/lab/test_serve_ray.py"),
        after=("real vLLM",),
    ),
    Group("testinfra", ("tests/lab/test_infra.py",), after=("real vLLM", "rest")),
)
# The REST group's lab suites whose labs serve the real model (lab_in without real_vllm=False):
# they wait for the real vLLM's image, so they run last, after the labs that need no image.
REAL_MODEL_LAST = ("tests/lab/test_dynamo.py", "tests/lab/test_serve_trtllm.py")


def arguments() -> dict[str, list[str]]:
    """Each group's pytest paths, REST replaced by every folder of tests/ (the lab's last) and an
    --ignore of every file another group names."""
    listed = [path for group in GROUPS for path in group.paths if path != REST]
    missing = [path for path in listed if not (ROOT / path).is_file()]
    if missing or len(set(listed)) != len(listed):
        raise SystemExit(f"tools/parallel_pytest.py: GROUPS names {missing or 'a file twice'}")
    names = {group.name for group in GROUPS}
    if any(set(group.after) - names for group in GROUPS):
        raise SystemExit("tools/parallel_pytest.py: a group waits for a group that is not there")
    # The suites without a lab first, then the labs without the real vLLM: they run while the
    # real vLLM group builds its image and model (once per machine, minutes on a cold one).
    first = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").iterdir() if _suite(p))
    taken = {*listed, *REAL_MODEL_LAST}
    labs = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests/lab").glob("test_*.py")
        if str(p.relative_to(ROOT)) not in taken
    )
    rest = [*first, *labs, *REAL_MODEL_LAST]
    return {g.name: rest if g.paths == (REST,) else list(g.paths) for g in GROUPS}


def _suite(path: Path) -> bool:
    """A folder or test file of tests/ other than the lab's."""
    if path.name == "lab":
        return False
    return (path.is_dir() and path.name != "__pycache__") or path.name.startswith("test_")


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks since boot, all CPUs (the first line of /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def slowest_files(report: Path, top: int = 8) -> list[tuple[str, float]]:
    """Seconds per test file (setup, call and teardown of its tests), slowest first."""
    if not report.is_file():
        return []
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        path = "/".join(m for m in module if not m[:1].isupper()) + ".py"  # drops a class name
        seconds[path] += float(case.get("time") or 0)
    return sorted(seconds.items(), key=lambda item: -item[1])[:top]


def _report(name: str, code: int, took: float, log: Path) -> None:
    lines = log.read_text(errors="replace").splitlines()
    print(f"\n[tests] {name}: exit {code} in {took / 60:.1f} min")
    print("\n".join(lines[-200 if code else -30 :]))
    for path, seconds in slowest_files(log.with_suffix(".xml")):
        print(f"[tests] {name}: {seconds / 60:5.1f} min {path}")
    sys.stdout.flush()


def run(extra: list[str], logs: Path) -> list[str]:
    """Every group, each started once the groups it waits for have ended; the failed ones."""
    pytest = str(Path(sys.executable).parent / "pytest")
    paths = arguments()
    began = time.monotonic()
    waiting = list(GROUPS)
    running: dict[str, tuple[subprocess.Popen[bytes], Path, float]] = {}
    ended: set[str] = set()
    failed: list[str] = []
    while waiting or running:
        for group in [g for g in waiting if set(g.after) <= ended]:
            waiting.remove(group)
            log = logs / f"{group.name.replace(' ', '-')}.log"
            report = f"--junitxml={log.with_suffix('.xml')}"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [pytest, *paths[group.name], *extra, report],
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            running[group.name] = (process, log, time.monotonic())
            at = (time.monotonic() - began) / 60
            print(f"[tests] {group.name}: started at {at:.1f} min -> {log}", flush=True)
        for name, (process, log, started) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            del running[name]
            ended.add(name)
            _report(name, code, time.monotonic() - started, log)
            if code != 0:
                failed.append(name)
        time.sleep(2)
    return failed


def main(extra: list[str]) -> int:
    folder = os.environ.get("IRONSERVE_TEST_LOGS") or tempfile.mkdtemp(prefix="ironserve-tests-")
    logs = Path(folder)
    logs.mkdir(parents=True, exist_ok=True)
    started, (busy, total) = time.monotonic(), _cpu_ticks()
    failed = run(extra, logs)
    busy_after, total_after = _cpu_ticks()
    share = (busy_after - busy) / max(1, total_after - total)
    took = (time.monotonic() - started) / 60
    print(f"[tests] every group: {took:.1f} min, CPUs {share:.0%} busy", flush=True)
    print(f"\n[tests] {'failed groups: ' + ', '.join(failed) if failed else 'every group passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
