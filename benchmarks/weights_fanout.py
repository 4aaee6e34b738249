"""Weights fan-out vs every node downloading by itself, on light lab nodes (sshd, rsync and the
hub-client venv; the lab hub standing in for the internet hub, capped below the lab network).

For N in 1, 2, 4, 8 (one lab of N nodes each, its hub serving the lab model regenerated at
--mib MiB in 4 shards, capped at --cap MiB/s):
  fan-out:  `ironserve weights pull -i inventories/lab.py` (one download on the seed with the real
            client, sha256 verification, a doubling tree of rsync-over-SSH pulls, `sha256sum -c`
            on every receiver): wall seconds, hub bytes served / model bytes;
  baseline: every node runs the hub client itself (huggingface_hub snapshot_download against the
            hub, in parallel over SSH, no verification): the same two figures.

    .venv/bin/python benchmarks/weights_fanout.py [--sizes 1,2,4,8] [--mib 256] [--cap 40]

Prints a table, then, as its last line, one JSON list of objects with nodes, hub_bytes_ratio,
wall_s, baseline_hub_bytes_ratio, baseline_wall_s (and model_bytes, cap_bytes_per_s).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
BIN = Path(sys.executable).parent

from ironserve.lab import cluster  # noqa: E402
from ironserve.lab import state as st  # noqa: E402
from ironserve.lab.hub.control import HubControl  # noqa: E402
from ironserve.weights import remote  # noqa: E402

REPO = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"  # the synthetic repo, regenerated to a size
VENV = "/opt/ironserve/hub-client"
BASELINE_DIR = "/data/baseline"


def log(message: str) -> None:
    print(f"[weights-fanout] {message}", file=sys.stderr, flush=True)


def ssh_data(state: st.LabState, node: st.NodeState) -> dict[str, Any]:
    return {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": node.ssh_port,
        "ssh_user": "root",
        "ssh_key": state.ssh_key,
        "ssh_known_hosts_file": state.known_hosts,
    }


def fanout(directory: Path) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "ironserve"), "weights", "pull", "-i", "inventories/lab.py"],
        cwd=ROOT,
        env={**os.environ, "IRONSERVE_LAB_DIR": str(directory), "IRONSERVE_LAB_MODEL": REPO},
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"weights pull failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return wall, result.stdout


def baseline(state: st.LabState, endpoint: str) -> float:
    """Every node downloads the model itself with the hub client (the seed guides' way)."""
    code = (
        "from huggingface_hub import snapshot_download as s; "
        f"s({REPO!r}, local_dir={BASELINE_DIR!r}, endpoint={endpoint!r}, max_workers=4)"
    )
    command = (
        "HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_PROGRESS_BARS=1 "
        f"{VENV}/bin/python -c {shlex.quote(code)}"
    )

    def one(node: st.NodeState) -> None:
        result = remote.run(node.name, ssh_data(state, node), command, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"{node.name}: baseline download failed: {result.stderr[-2000:]}")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        list(pool.map(one, state.nodes))
    return time.monotonic() - started


def measure(nodes: int, mib: int, cap: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix=f"weights-fanout-{nodes}-"))
    try:
        state = cluster.up(nodes=nodes, profile="gpu2", light=True, directory=directory)
        service = state.services["hub"]
        control = HubControl(service.host_url or service.url)
        model_bytes = control.add_repo(REPO, total_bytes=mib << 20, shards=4)["total_bytes"]
        control.limit(cap << 20)

        control.reset()
        wall, _ = fanout(directory)
        ratio = control.stats()["total_bytes"] / model_bytes
        log(f"{nodes} node(s): fan-out {wall:.1f}s, hub bytes x{ratio:.2f}")

        control.reset()
        base_wall = baseline(state, service.url.rstrip("/"))
        base_ratio = control.stats()["total_bytes"] / model_bytes
        log(f"{nodes} node(s): baseline {base_wall:.1f}s, hub bytes x{base_ratio:.2f}")
        return {
            "nodes": nodes,
            "hub_bytes_ratio": round(ratio, 3),
            "wall_s": round(wall, 1),
            "baseline_hub_bytes_ratio": round(base_ratio, 3),
            "baseline_wall_s": round(base_wall, 1),
            "model_bytes": model_bytes,
            "cap_bytes_per_s": cap << 20,
        }
    finally:
        cluster.down(directory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--mib", type=int, default=256, help="model size in MiB")
    parser.add_argument("--cap", type=int, default=40, help="hub bandwidth cap in MiB/s")
    args = parser.parse_args()
    rows = [measure(int(n), args.mib, args.cap) for n in args.sizes.split(",")]
    print(f"model {args.mib} MiB, hub capped at {args.cap} MiB/s, light lab nodes")
    print(f"{'nodes':>5}  {'fan-out s':>9}  {'hub x':>6}  {'baseline s':>10}  {'hub x':>6}")
    for r in rows:
        print(
            f"{r['nodes']:>5}  {r['wall_s']:>9.1f}  {r['hub_bytes_ratio']:>6.2f}  "
            f"{r['baseline_wall_s']:>10.1f}  {r['baseline_hub_bytes_ratio']:>6.2f}"
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
