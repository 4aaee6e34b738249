"""Bring-up time: seconds from bare lab nodes to the first token of the real vLLM, by phase.

One lab of 3 labgpu nodes (`make demo`'s shape; images built and cached, the lab's real model on
the lab hub), then, timed from this machine:
  provision    pyinfra deploys/provision.py (driver, toolkit, Docker configured with the registry)
  weights      pyinfra deploys/weights.py (one download from the hub, verified, fanned out)
  images       the engine image (the real vLLM, vllm/vllm-openai:v0.32.0) resolved to its digest
               as roles/engine does, then `docker pull -q name@sha256:...` (the role's command) on
               every node at once, each node's pull timed on its own
  containers   deploys/serve.py up to its readiness wait: connect, facts, the env file, every
               rank's container started (the image is there: no pull)
  load         the real vLLM on 3 nodes (--nnodes 3, TP 1 x PP 3) until /health answers
  first_token  a real chat completion with the API key (and its refusal without)
Phase boundaries in serve.py are the moments pyinfra starts the matching operations (its output
read line by line as it runs). The lab's own start-up is reported apart (lab_up_s), as are the
image's size (unpacked on a node, and as the registry stores it: the lab's layers are
uncompressed tars, lab/registry_push.py) and each node's memory (PSS)
once it serves.

    .venv/bin/python benchmarks/bringup.py [--keep]

Prints one line per phase, then, as its last line, one JSON object: nodes, profile, phases_s,
total_s, lab_up_s, image ({reference, bytes, registry_bytes}), pull_s (per node),
node_memory_mib (per node).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
BIN = Path(sys.executable).parent

from ironserve.lab import cluster, vllm_image  # noqa: E402
from ironserve.lab import state as st  # noqa: E402
from ironserve.serving import registry  # noqa: E402

NODES, PROFILE = 3, "labgpu"
INVENTORY = "inventories/lab.py"
# serve.py operations that open a phase (the first one seen wins).
MARKS = (
    ("load", "Engine | Wait until the engine answers /health"),
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


def node_run(state: st.LabState, node: st.NodeState, command: str) -> str:
    import docker

    container = docker.from_env().containers.get(node.container_id)
    result = container.exec_run(["sh", "-c", command])
    if result.exit_code != 0:
        raise SystemExit(f"{node.name}: {command!r} failed: {result.output.decode()[-500:]}")
    return str(result.output.decode())


def pull_everywhere(state: st.LabState) -> tuple[str, dict[str, float], int, int]:
    """The engine image pinned as roles/engine pins it, pulled on every node at once:
    (pinned reference, seconds per node, unpacked bytes, the layers' bytes in the registry)."""
    service = state.services["registry"]
    name = f"{service.address}:5000/vllm/vllm-openai:v{vllm_image.VERSION}"
    pinned = registry.resolve(name, insecure=[f"{service.address}:5000"], mirrors=[])
    host = service.host_url or service.url
    manifest = httpx.get(
        f"{host}/v2/vllm/vllm-openai/manifests/{pinned.rsplit('@', 1)[1]}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=30,
    ).json()
    stored = sum(int(layer["size"]) for layer in manifest["layers"])

    def pull(node: st.NodeState) -> tuple[str, float]:
        started = time.monotonic()
        node_run(state, node, f"docker pull -q {shlex.quote(pinned)}")
        return node.name, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        seconds = dict(pool.map(pull, state.nodes))
    size = node_run(state, state.nodes[0], f"docker image inspect -f '{{{{.Size}}}}' {pinned}")
    return pinned, seconds, int(size.strip()), stored


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ironserve-bringup-"))
    started = time.monotonic()
    cluster.up(nodes=NODES, profile=PROFILE, light=False, directory=directory)
    lab_up = time.monotonic() - started
    log(f"lab up ({NODES} x {PROFILE}) in {lab_up:.1f}s: {directory}")
    image: dict[str, Any] = {}
    try:
        phases: dict[str, float] = {}
        phases["provision"], _ = pyinfra(directory, "deploys/provision.py")
        phases["weights"], _ = pyinfra(directory, "deploys/weights.py")
        state = st.load(directory)
        assert state is not None
        pulls_started = time.monotonic()
        pinned, pull_s, size, stored = pull_everywhere(state)
        phases["images"] = time.monotonic() - pulls_started
        image = {"reference": pinned, "bytes": size, "registry_bytes": stored}
        serve, marks = pyinfra(directory, "deploys/serve.py")
        missing = [m for m, _ in MARKS if m not in marks]
        if missing:
            raise SystemExit(f"serve.py ran no {', '.join(missing)} operation (already up?)")
        phases["containers"] = marks["load"]
        phases["load"] = marks["first_token"] - marks["load"]
        phases["first_token"] = serve - marks["first_token"]
        served = cluster.status(directory, memory=True) or {"nodes": []}
        memory = {n["name"]: n["memory_mib"] for n in served["nodes"]}
    finally:
        if not args.keep:
            cluster.down(directory)
    total = sum(phases.values())
    for name, seconds in phases.items():
        print(f"{name:12s} {seconds:7.1f} s")
    print(f"{'total':12s} {total:7.1f} s  (bare nodes to first token; lab up {lab_up:.1f} s)")
    print(
        f"image {image['reference']}: {image['bytes'] / 2**30:.2f} GiB unpacked, "
        f"{image['registry_bytes'] / 2**30:.2f} GiB in the registry; pull per node "
        + ", ".join(f"{n} {s:.1f} s" for n, s in pull_s.items())
    )
    print("memory per node (PSS, serving): " + ", ".join(f"{n} {m} MiB" for n, m in memory.items()))
    print(
        json.dumps(
            {
                "nodes": NODES,
                "profile": PROFILE,
                "phases_s": {k: round(v, 1) for k, v in phases.items()},
                "total_s": round(total, 1),
                "lab_up_s": round(lab_up, 1),
                "image": image,
                "pull_s": {k: round(v, 1) for k, v in pull_s.items()},
                "node_memory_mib": memory,
            }
        )
    )


if __name__ == "__main__":
    main()
