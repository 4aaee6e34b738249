"""Weights streamed through the group vs every node downloading by itself, on light lab nodes
(sshd, rsync and the hub-client venv; the lab hub standing in for the internet hub, capped below
the lab network).

For N in --sizes (one lab of N nodes each, its hub serving the lab model regenerated at --mib MiB
in 4 shards, capped at --cap MiB/s):
  stream:   `ironserve weights pull -i inventories/lab.py` (the seed downloads file by file with
            the real client and verifies each against the hub's sha256; every other node pulls
            each file from its upstream as soon as it is verified there, and verifies it too):
            wall seconds, hub bytes served / model bytes, then `sha256sum -c SHA256SUMS` on
            every node (the run fails if one does not pass);
  baseline: every node runs the hub client itself (huggingface_hub snapshot_download against the
            hub, in parallel over SSH, no verification): the same two figures (--no-baseline:
            skipped).

The link limit is the model's bytes over the cap: no way of staging the group beats one copy
through the hub's link. Each size's wall time is also given as a ratio to it and to one node's
(``--sizes`` must then start with 1; the same run measures both).

    .venv/bin/python benchmarks/weights_fanout.py [--sizes 1,2,4,8,16] [--mib 256] [--cap 40]

Prints a table, then, as its last line, one JSON object: model_bytes, cap_bytes_per_s,
link_limit_s, and rows, a list of objects with nodes, wall_s, hub_bytes_ratio, link_ratio,
one_node_ratio, sums_ok (and baseline_wall_s, baseline_hub_bytes_ratio).
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

import docker  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
BIN = Path(sys.executable).parent

from ironserve.lab import cluster  # noqa: E402
from ironserve.lab import state as st  # noqa: E402
from ironserve.lab.hub.control import HubControl  # noqa: E402

REPO = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"  # the synthetic repo, regenerated to a size
VENV = "/opt/ironserve/hub-client"
BASELINE_DIR = "/data/baseline"


def log(message: str) -> None:
    print(f"[weights-fanout] {message}", file=sys.stderr, flush=True)


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
        code, out = on_node(node, command)
        if code != 0:
            raise RuntimeError(f"{node.name}: baseline download failed: {out[-2000:]}")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        list(pool.map(one, state.nodes))
    return time.monotonic() - started


def on_node(node: st.NodeState, command: str) -> tuple[int, str]:
    """A command in the node's container (docker exec): exit code and output."""
    result = docker.from_env().containers.get(node.container_id).exec_run(["sh", "-c", command])
    return result.exit_code, result.output.decode(errors="replace")


def sums_ok(state: st.LabState) -> bool:
    """`sha256sum -c` of the manifest's SHA256SUMS on every node."""
    command = f"cd /data/models/{REPO} && sha256sum -c --quiet SHA256SUMS"

    def one(node: st.NodeState) -> bool:
        code, out = on_node(node, command)
        if code != 0:
            log(f"{node.name}: sha256sum -c failed: {out[-500:]}")
        return code == 0

    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        return all(pool.map(one, state.nodes))


def measure(nodes: int, mib: int, cap: int, with_baseline: bool) -> dict[str, Any]:
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
        log(f"{nodes} node(s): stream {wall:.1f}s, hub bytes x{ratio:.2f}")
        row: dict[str, Any] = {
            "nodes": nodes,
            "wall_s": round(wall, 2),
            "hub_bytes_ratio": round(ratio, 3),
            "sums_ok": sums_ok(state),
            "model_bytes": model_bytes,
        }
        if with_baseline:
            control.reset()
            base_wall = baseline(state, service.url.rstrip("/"))
            base_ratio = control.stats()["total_bytes"] / model_bytes
            log(f"{nodes} node(s): baseline {base_wall:.1f}s, hub bytes x{base_ratio:.2f}")
            row["baseline_wall_s"] = round(base_wall, 1)
            row["baseline_hub_bytes_ratio"] = round(base_ratio, 3)
        return row
    finally:
        cluster.down(directory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4,8,16")
    parser.add_argument("--mib", type=int, default=256, help="model size in MiB")
    parser.add_argument("--cap", type=int, default=40, help="hub bandwidth cap in MiB/s")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    args = parser.parse_args()
    rows = [measure(int(n), args.mib, args.cap, args.baseline) for n in args.sizes.split(",")]
    model_bytes = rows[0]["model_bytes"]
    link_limit = model_bytes / (args.cap << 20)
    one = next((r["wall_s"] for r in rows if r["nodes"] == 1), None)
    for r in rows:
        del r["model_bytes"]
        r["link_ratio"] = round(r["wall_s"] / link_limit, 2)
        r["one_node_ratio"] = round(r["wall_s"] / one, 2) if one else None
    print(f"model {args.mib} MiB in 4 shards, hub capped at {args.cap} MiB/s, light lab nodes")
    print(f"link limit (model bytes / cap): {link_limit:.2f} s")
    head = f"{'nodes':>5}  {'stream s':>8}  {'/link':>5}  {'/1 node':>7}  {'hub x':>5}  {'sums':>4}"
    print(head + (f"  {'baseline s':>10}  {'hub x':>5}" if args.baseline else ""))
    for r in rows:
        line = (
            f"{r['nodes']:>5}  {r['wall_s']:>8.1f}  {r['link_ratio']:>5.2f}  "
            f"{r['one_node_ratio'] if one else '-':>7}  {r['hub_bytes_ratio']:>5.2f}  "
            f"{'ok' if r['sums_ok'] else 'FAIL':>4}"
        )
        if args.baseline:
            line += f"  {r['baseline_wall_s']:>10.1f}  {r['baseline_hub_bytes_ratio']:>5.2f}"
        print(line)
    doc = {
        "model_bytes": model_bytes,
        "cap_bytes_per_s": args.cap << 20,
        "link_limit_s": round(link_limit, 3),
        "rows": rows,
    }
    print(json.dumps(doc))
    return 0 if all(r["sums_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
