"""Run the whole test suite as pytest processes, some side by side (`make test`).

Most of the lab suites' wall time is waiting (image pulls, SSH round trips, Ray noticing a dead
node), but two kinds of lab are CPU-bound on a 2-core machine: the real vLLM loading and serving
across three nodes, and the Ray stand-in clusters (a GCS, raylets and agents per node). Two of
those side by side starve each other until Ray's heartbeats and the readiness waits time out, so
they never overlap: PHASES run one after another, and the groups of a phase side by side. Phase 1
pairs the real vLLM with everything that runs no engine (unit, golden, simulated and provisioning
suites); phase 2 holds the Ray labs alone. pytest-xdist cannot split them (its workers clash with
pyinfra's gevent monkey-patching). Every lab a test starts is its own (own folder, subnet, ports),
and image builds take one machine-wide lock. The group marked REST gets every test file the other
groups do not name, so no test is left out (each file is in exactly one group, checked here).

    .venv/bin/python tools/parallel_pytest.py [pytest args...]

Each group's output goes to a log under $IRONSERVE_TEST_LOGS (default: a temporary folder);
a group's tail is printed when it ends, with its wall time and its slowest test files (from a
JUnit report beside the log); each phase ends with its wall time and how busy the machine's CPUs
were (/proc/stat), the figures to plan the phases by. Exit 0 only when every group passed
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REST = "REST"
PHASES: list[list[list[str]]] = [
    [["tests/lab/test_serve.py", "tests/lab/test_real_vllm_parser.py"], [REST]],
    [["tests/lab/test_serve_ray.py", "tests/lab/test_infra.py", "tests/lab/test_runbooks.py"]],
]


def phases() -> list[list[list[str]]]:
    """PHASES with REST replaced by ``tests`` and an --ignore of every file another group names."""
    listed = [path for phase in PHASES for group in phase for path in group if path != REST]
    missing = [path for path in listed if not (ROOT / path).is_file()]
    if missing or len(set(listed)) != len(listed):
        raise SystemExit(f"tools/parallel_pytest.py: PHASES names {missing or 'a file twice'}")
    rest = ["tests", *(f"--ignore={path}" for path in listed)]
    return [[rest if group == [REST] else group for group in phase] for phase in PHASES]


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


def _run_phase(phase: list[list[str]], first: int, extra: list[str], logs: Path) -> list[int]:
    """Run the phase's groups side by side; the numbers of those that failed."""
    pytest = str(Path(sys.executable).parent / "pytest")
    running: dict[int, tuple[subprocess.Popen[bytes], Path, float, str]] = {}
    for number, group in enumerate(phase, start=first):
        log = logs / f"group-{number}.log"
        report = f"--junitxml={log.with_suffix('.xml')}"
        name = " ".join(p for p in group if not p.startswith("--"))
        name += " (the rest)" if group[0] == "tests" else ""
        with log.open("wb") as out:
            process = subprocess.Popen(
                [pytest, *group, *extra, report], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        running[number] = (process, log, time.monotonic(), name)
        print(f"[tests] group {number}: {name} -> {log}", flush=True)
    failed = []
    while running:
        for number, (process, log, started, name) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            del running[number]
            took = time.monotonic() - started
            lines = log.read_text(errors="replace").splitlines()
            print(f"\n[tests] group {number} ({name}): exit {code} in {took / 60:.1f} min")
            print("\n".join(lines[-200 if code else -30 :]))
            for path, seconds in slowest_files(log.with_suffix(".xml")):
                print(f"[tests] group {number}: {seconds / 60:5.1f} min {path}")
            sys.stdout.flush()
            if code != 0:
                failed.append(number)
        time.sleep(2)
    return failed


def main(extra: list[str]) -> int:
    folder = os.environ.get("IRONSERVE_TEST_LOGS") or tempfile.mkdtemp(prefix="ironserve-tests-")
    logs = Path(folder)
    logs.mkdir(parents=True, exist_ok=True)
    failed: list[int] = []
    first = 1
    for number, phase in enumerate(phases(), start=1):
        started, (busy, total) = time.monotonic(), _cpu_ticks()
        failed += _run_phase(phase, first, extra, logs)
        first += len(phase)
        busy_after, total_after = _cpu_ticks()
        share = (busy_after - busy) / max(1, total_after - total)
        took = (time.monotonic() - started) / 60
        print(f"[tests] phase {number}: {took:.1f} min, CPUs {share:.0%} busy", flush=True)
    print(f"\n[tests] {'failed groups: ' + str(failed) if failed else 'every group passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
