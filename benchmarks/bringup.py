"""Bring-up time: seconds from bare lab nodes to the first token, split by phase.

One lab of 3 gpu2 nodes (2 simulated GPUs each; images built and cached, the model on the lab
hub), then, timed from this machine:
  provision    pyinfra deploys/provision.py (driver, toolkit, Docker configured with the registry)
  weights      pyinfra deploys/weights.py (one download from the hub, verified, fanned out)
  images       deploys/serve.py up to its first container: connect, facts, the image's digest
               resolved, the env file, the pull by digest on every node in parallel
  ray          the head's and the workers' Ray containers, until `ray status` shows 3 nodes, 6 GPUs
  load         `vllm serve` in the head until /health answers (the lab engine's simulated load)
  first_token  a real chat completion with the API key (and its refusal without)
Phase boundaries in serve.py are the moments pyinfra starts the matching operations (its output
read line by line as it runs). The lab's own start-up is reported apart (lab_up_s).

    .venv/bin/python benchmarks/bringup.py [--keep]

Prints one line per phase, then, as its last line, one JSON object: nodes, profile, phases_s
(provision, weights, images, ray, load, first_token), total_s, lab_up_s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
BIN = Path(sys.executable).parent

from ironserve.lab import cluster  # noqa: E402

NODES, PROFILE = 3, "gpu2"
INVENTORY = "inventories/lab.py"
# serve.py operations that open a phase (the first one seen wins).
MARKS = (
    ("ray", "Engine | Start the head's engine container"),
    ("load", "Engine | Start the serve command in the Ray head"),
    ("first_token", "Engine | Prove a chat completion"),
)


def log(message: str) -> None:
    print(f"[bringup] {message}", file=sys.stderr, flush=True)


def pyinfra(directory: Path, deploy: str) -> tuple[float, dict[str, float]]:
    """Run one deploy; (wall seconds, {mark: seconds after start when its operation began})."""
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    seen: dict[str, float] = {}
    tail: list[str] = []
    with subprocess.Popen(
        [str(BIN / "pyinfra"), "-y", INVENTORY, deploy],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail, line][-40:]
            for mark, needle in MARKS:
                if mark not in seen and "Starting operation" in line and needle in line:
                    seen[mark] = time.monotonic() - started
        code = proc.wait()
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"{deploy} failed ({code}):\n{''.join(tail)}")
    return wall, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ironserve-bringup-"))
    started = time.monotonic()
    cluster.up(nodes=NODES, profile=PROFILE, light=False, directory=directory)
    lab_up = time.monotonic() - started
    log(f"lab up ({NODES} x {PROFILE}) in {lab_up:.1f}s: {directory}")
    try:
        phases: dict[str, float] = {}
        phases["provision"], _ = pyinfra(directory, "deploys/provision.py")
        phases["weights"], _ = pyinfra(directory, "deploys/weights.py")
        serve, marks = pyinfra(directory, "deploys/serve.py")
        missing = [m for m, _ in MARKS if m not in marks]
        if missing:
            raise SystemExit(f"serve.py ran no {', '.join(missing)} operation (already up?)")
        phases["images"] = marks["ray"]
        phases["ray"] = marks["load"] - marks["ray"]
        phases["load"] = marks["first_token"] - marks["load"]
        phases["first_token"] = serve - marks["first_token"]
    finally:
        if not args.keep:
            cluster.down(directory)
    total = sum(phases.values())
    for name, seconds in phases.items():
        print(f"{name:12s} {seconds:7.1f} s")
    print(f"{'total':12s} {total:7.1f} s  (bare nodes to first token; lab up {lab_up:.1f} s)")
    print(
        json.dumps(
            {
                "nodes": NODES,
                "profile": PROFILE,
                "phases_s": {k: round(v, 1) for k, v in phases.items()},
                "total_s": round(total, 1),
                "lab_up_s": round(lab_up, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
