"""Wall time of ``ironserve health --tier node`` on 3, 12 and 48 light lab nodes.

Each size gets a lab of its own (``ironserve lab up --light`` in a temporary IRONSERVE_LAB_DIR),
taken down afterwards. Light nodes are not provisioned (no nvidia-smi, no docker), so the GPU
checks answer UNKNOWN and the container runtime FAIL: the figure is the cost of connecting to
every node over real SSH and running every node-tier probe (about 15 per NVIDIA node). The last
line printed is one JSON value: {"nodes": seconds, ...}.

    .venv/bin/python benchmarks/health_sweep.py [--sizes 3,12,48]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def sweep(size: int) -> float:
    with tempfile.TemporaryDirectory(prefix="health-sweep-") as directory:
        env = {**os.environ, "IRONSERVE_LAB_DIR": directory}
        up = _run(
            [
                str(BIN / "ironserve"),
                "lab",
                "up",
                "--light",
                "--nodes",
                str(size),
                "--profile",
                "gpu2",
            ],
            env,
        )
        if up.returncode != 0:
            raise SystemExit(f"lab up failed: {up.stderr[-500:]}")
        try:
            start = time.perf_counter()
            health = _run(
                [
                    str(BIN / "ironserve"),
                    "health",
                    "-i",
                    "inventories/lab.py",
                    "--tier",
                    "node",
                    "--json",
                ],
                env,
            )
            elapsed = time.perf_counter() - start
            report = json.loads(health.stdout)
            assert len(report["nodes"]) == size, report["nodes"]
            unreachable = [r for r in report["results"] if r["check"] == "host.reachable"]
            assert not unreachable, unreachable  # every node must really have been probed
            print(f"{size} nodes: {elapsed:.2f}s (exit {health.returncode})", flush=True)
            return round(elapsed, 2)
        finally:
            _run([str(BIN / "ironserve"), "lab", "down"], env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="3,12,48")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print(json.dumps({str(size): sweep(size) for size in sizes}))


if __name__ == "__main__":
    main()
