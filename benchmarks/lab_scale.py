"""How the lab scales in light mode (sshd-only nodes): 3, 12 and 48 nodes on this machine.

For each size: seconds for `lab up` (containers created and sshd answering), seconds from the
start until every node answered a real pyinfra run over SSH (`pyinfra -y inventories/lab.py exec
-- true`), and memory per node: mem_mib_per_node is the proportional set size (PSS) of the node's
processes (tini, sshd) plus its containerd shim and docker-proxy, i.e. what a node costs the
host; cgroup_mib_per_node is the node cgroup's own charge (what `docker stats` shows);
host_mib_per_node is the drop of the host's MemAvailable per node (noisy on a shared machine).
Each lab lives in its own folder and is removed afterwards.

    .venv/bin/python benchmarks/lab_scale.py [--sizes 3,12,48] [--profile h100x8]

Prints a table, then, as its last line, one JSON value: a list of objects with nodes, up_s,
ssh_s, mem_mib_per_node (and cgroup_mib_per_node, host_mib_per_node, down_s).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ironserve.lab import cluster, images  # noqa: E402


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            table[int(entry.name)] = (ppid, cmdline)
    return table


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def node_pss_mib(client: Any, doc: dict[str, Any]) -> list[float]:
    """Per node: PSS of its processes (init, sshd), its containerd shim and its docker-proxy."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    sizes = []
    for node in doc["nodes"]:
        init = int(client.containers.get(node["container_id"]).attrs["State"]["Pid"])
        pids, todo = set(), [init]
        while todo:
            pid = todo.pop()
            pids.add(pid)
            todo += children.get(pid, [])
        if init in table:
            pids.add(table[init][0])  # containerd-shim-runc-v2
        port = f"-host-port\0{node['ssh_port']}\0".encode()
        pids |= {pid for pid, (_, cmd) in table.items() if b"docker-proxy" in cmd and port in cmd}
        sizes.append(sum(_pss_kib(pid) for pid in pids) / 1024)
    return sizes


def pyinfra_all(directory: Path, deadline: float) -> None:
    pyinfra = str(Path(sys.executable).parent / "pyinfra")
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory)}
    inventory = str(ROOT / "inventories" / "lab.py")
    while True:
        result = subprocess.run(
            [pyinfra, "-y", inventory, "exec", "--", "true"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"pyinfra could not reach every node:\n{result.stderr[-2000:]}")
        time.sleep(0.5)


def measure(size: int, profile: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ironserve-lab-scale-") as tmp:
        directory = Path(tmp)
        time.sleep(2)
        before = mem_available_mib()
        started = time.monotonic()
        try:
            cluster.up(nodes=size, profile=profile, light=True, directory=directory)
            up_s = time.monotonic() - started
            pyinfra_all(directory, started + 300)
            ssh_s = time.monotonic() - started
            time.sleep(3)  # let the first logins' sshd children go
            after = mem_available_mib()
            doc = cluster.status(directory, memory=True) or {"nodes": []}
            cgroup = [n["memory_mib"] for n in doc["nodes"] if n.get("memory_mib") is not None]
            pss = node_pss_mib(cluster.connect(), doc)
        finally:
            down_started = time.monotonic()
            cluster.down(directory)
            down_s = time.monotonic() - down_started
    return {
        "nodes": size,
        "up_s": round(up_s, 1),
        "ssh_s": round(ssh_s, 1),
        "mem_mib_per_node": round(sum(pss) / len(pss), 1),
        "cgroup_mib_per_node": round(sum(cgroup) / len(cgroup), 1) if cgroup else None,
        "host_mib_per_node": round((before - after) / size, 1),
        "down_s": round(down_s, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3,12,48")
    parser.add_argument("--profile", default="h100x8")
    args = parser.parse_args()
    client = cluster.connect()
    started = time.monotonic()
    built = images.ensure_images(client)
    print(f"images ready in {time.monotonic() - started:.1f}s: {built.node}", file=sys.stderr)
    rows = [measure(int(s), args.profile) for s in args.sizes.split(",")]
    columns = [
        ("nodes", "nodes"),
        ("up_s", "up s"),
        ("ssh_s", "ssh s"),
        ("mem_mib_per_node", "PSS MiB/node"),
        ("cgroup_mib_per_node", "cgroup MiB/node"),
        ("host_mib_per_node", "host MiB/node"),
        ("down_s", "down s"),
    ]
    print("  ".join(f"{title:>{len(title)}}" for _, title in columns))
    for r in rows:
        print("  ".join(f"{r[key]!s:>{len(title)}}" for key, title in columns))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
