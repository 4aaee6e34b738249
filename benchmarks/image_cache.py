"""Registry bytes served per image byte, with and without the group's pull-through image cache
(issue 17), on full lab nodes (nested dockerd); the lab registry stands in for the upstream
registry and its access log is the byte counter (lab/registry.py ``served_bytes``).

For N in 1, 2, 3 (one lab of N gpu2 nodes each, provisioned with the cache listed on every node,
the stand-in vLLM 0.11.0 image, about 570 MB):
  direct: roles/engine's pull by digest on every node in parallel, no cache
          (tests/lab/deploys/image_pull.py with image_cache_enabled off): the upstream's bytes
          for the engine image's blobs / the image's bytes (config and layers), wall seconds;
  cache:  the images removed from the nodes, the same deploy with the cache on (the head's
          registry in proxy mode filled once, then every node pulls through it): the same two
          figures, then a second run's upstream bytes (0 when the cache holds everything).

    .venv/bin/python benchmarks/image_cache.py [--sizes 1,2,3]

Prints a table, then, as its last line, one JSON list of objects with nodes, image_bytes,
direct_ratio, direct_wall_s, cache_ratio, cache_wall_s, second_run_bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import paramiko

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
BIN = Path(sys.executable).parent

from ironserve.lab import cluster  # noqa: E402
from ironserve.lab import registry as lab_registry  # noqa: E402
from ironserve.lab import state as st  # noqa: E402

ENGINE = "vllm/vllm-openai"
VERSION = "0.11.0"
DEPLOY = "tests/lab/deploys/image_pull.py"


def log(message: str) -> None:
    print(f"[image-cache] {message}", file=sys.stderr, flush=True)


def pyinfra(directory: Path, deploy: str, cache: bool) -> float:
    env = {
        **os.environ,
        "IRONSERVE_LAB_DIR": str(directory),
        "IRONSERVE_LAB_ENGINE_VERSION": VERSION,
        "IRONSERVE_LAB_IMAGE_CACHE": "1" if cache else "0",
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "pyinfra"), "-y", "inventories/lab.py", deploy],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{deploy} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def ssh(state: st.LabState, node: st.NodeState, command: str) -> str:
    client = paramiko.SSHClient()
    client.load_host_keys(state.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1", port=node.ssh_port, username="root", key_filename=state.ssh_key, timeout=10
    )
    try:
        _, stdout, stderr = client.exec_command(command, timeout=300)
        out = stdout.read().decode() + stderr.read().decode()
        if stdout.channel.recv_exit_status() != 0:
            raise RuntimeError(f"{node.name}: {command!r}: {out}")
        return out
    finally:
        client.close()


def upstream_bytes(docker: Any, state: st.LabState) -> int:
    container = docker.containers.get(state.services["registry"].container_id)
    return lab_registry.served_bytes(container.logs(stdout=True, stderr=False).decode(), ENGINE)


def image_bytes(state: st.LabState) -> int:
    engine = next(r for r in state.engine_images if f"/{ENGINE}:v{VERSION}" in r)
    url = (
        f"{state.services['registry'].host_url}/v2/{ENGINE}/manifests/{state.engine_images[engine]}"
    )
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    manifest = httpx.get(url, headers={"Accept": accept}, timeout=30).json()
    # Distinct blobs: a layer listed twice is pulled once.
    found = {b["digest"]: int(b["size"]) for b in [manifest["config"], *manifest["layers"]]}
    return sum(found.values())


def counted(docker: Any, directory: Path, cache: bool) -> tuple[int, float]:
    state = st.load(directory)
    assert state is not None
    before = upstream_bytes(docker, state)
    wall = pyinfra(directory, DEPLOY, cache)
    time.sleep(1)  # the access log line is written when the response ends
    return upstream_bytes(docker, state) - before, wall


def measure(nodes: int) -> dict[str, Any]:
    docker = cluster.connect()
    with tempfile.TemporaryDirectory(prefix="image-cache-bench-") as tmp:
        directory = Path(tmp)
        os.environ["IRONSERVE_LAB_ENGINE_VERSION"] = VERSION
        state = cluster.up(nodes=nodes, profile="gpu2", light=False, directory=directory)
        try:
            provision = pyinfra(directory, "deploys/provision.py", cache=True)
            log(f"{nodes} nodes provisioned in {provision:.1f}s")
            size = image_bytes(state)
            direct, direct_wall = counted(docker, directory, cache=False)
            ref = f"{state.services['registry'].address}:5000/{ENGINE}"
            with ThreadPoolExecutor(max_workers=nodes) as pool:
                list(
                    pool.map(
                        lambda n: ssh(
                            state,
                            n,
                            f"docker images -q --no-trunc {ref} | sort -u | xargs -r docker rmi -f",
                        ),
                        state.nodes,
                    )
                )
            cached, cache_wall = counted(docker, directory, cache=True)
            second, _ = counted(docker, directory, cache=True)
        finally:
            cluster.down(directory)
    row = {
        "nodes": nodes,
        "image_bytes": size,
        "direct_ratio": round(direct / size, 3),
        "direct_wall_s": round(direct_wall, 1),
        "cache_ratio": round(cached / size, 3),
        "cache_wall_s": round(cache_wall, 1),
        "second_run_bytes": second,
    }
    log(json.dumps(row))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,3")
    args = parser.parse_args()
    rows = [measure(int(n)) for n in args.sizes.split(",")]
    print("engine image (stand-in vLLM 0.11.0), full gpu2 lab nodes, lab registry as upstream")
    head = ("nodes", "direct x", "direct s", "cache x", "cache s", "2nd B")
    print("  ".join(f"{h:>{w}}" for h, w in zip(head, (5, 8, 8, 7, 7, 6), strict=True)))
    for r in rows:
        print(
            f"{r['nodes']:>5}  {r['direct_ratio']:>8.2f}  {r['direct_wall_s']:>8.1f}  "
            f"{r['cache_ratio']:>7.2f}  {r['cache_wall_s']:>7.1f}  {r['second_run_bytes']:>6}"
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
