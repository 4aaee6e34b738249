"""Run the whole test suite as a few pytest processes side by side (`make test`).

Most of the lab suites' wall time is waiting: image pulls, engines loading, SSH round trips,
Ray noticing a dead node. pytest-xdist cannot help (its workers clash with pyinfra's gevent
monkey-patching), so the suite is split into groups of test files, each run by its own pytest
process at the same time; every lab a test starts is its own (own folder, subnet, ports), and
image builds take one machine-wide lock. GROUPS name the long lab modules; the last group is
everything else, so no test is left out (each file is in exactly one group, checked here).

    .venv/bin/python tools/parallel_pytest.py [pytest args...]

Each group's output goes to a log under $IRONSERVE_TEST_LOGS (default: a temporary folder);
a group's tail is printed when it ends, with its wall time. Exit 0 only when every group passed
(pytest exit 0: a group that collects nothing exits 5 and fails the run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The long lab modules, grouped so the groups take about the same time on a 2-core machine.
GROUPS: list[list[str]] = [
    ["tests/lab/test_runbooks.py"],
    ["tests/lab/test_serve.py", "tests/lab/test_real_vllm_parser.py"],
    ["tests/lab/test_serve_ray.py", "tests/lab/test_health.py", "tests/lab/test_infra.py"],
]


def groups() -> list[list[str]]:
    """GROUPS, then one group of every other test file (as --ignore's of the grouped ones)."""
    listed = [path for group in GROUPS for path in group]
    missing = [path for path in listed if not (ROOT / path).is_file()]
    if missing or len(set(listed)) != len(listed):
        raise SystemExit(f"tools/parallel_pytest.py: GROUPS names {missing or 'a file twice'}")
    return [*GROUPS, ["tests", *(f"--ignore={path}" for path in listed)]]


def main(extra: list[str]) -> int:
    folder = os.environ.get("IRONSERVE_TEST_LOGS") or tempfile.mkdtemp(prefix="ironserve-tests-")
    logs = Path(folder)
    logs.mkdir(parents=True, exist_ok=True)
    pytest = str(Path(sys.executable).parent / "pytest")
    running: dict[int, tuple[subprocess.Popen[bytes], Path, float, str]] = {}
    for index, group in enumerate(groups()):
        log = logs / f"group-{index + 1}.log"
        name = " ".join(p for p in group if not p.startswith("--")) + (
            " (the rest)" if index == len(GROUPS) else ""
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                [pytest, *group, *extra], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        running[index] = (process, log, time.monotonic(), name)
        print(f"[tests] group {index + 1}: {name} -> {log}", flush=True)
    failed = []
    while running:
        for index, (process, log, started, name) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            del running[index]
            took = time.monotonic() - started
            lines = log.read_text(errors="replace").splitlines()
            print(f"\n[tests] group {index + 1} ({name}): exit {code} in {took / 60:.1f} min")
            print("\n".join(lines[-200 if code else -30 :]), flush=True)
            if code != 0:
                failed.append(index + 1)
        time.sleep(2)
    print(f"\n[tests] {'failed groups: ' + str(failed) if failed else 'every group passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
