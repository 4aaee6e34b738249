"""What the serving lab tests share: pyinfra and ironserve runs against a lab of their own, the
endpoint through the `openai` client, the health report, the containers on every node."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import openai

from ironserve.lab import cluster, serving
from tests.lab.conftest import BIN, ROOT, Node


def inventory(lab_dir: Path) -> str:
    """The inventory deploying the lab in ``lab_dir``: inventories/lab_dynamo.py for a Dynamo
    lab (`lab up --dynamo`), else inventories/lab.py."""
    return str(serving.lab_inventory(lab_dir).relative_to(ROOT))


# Short polls for the faults; the defaults (10 min for Ray, 2 h / 15 min stall for the load)
# are for real clusters.
FAST = ["--data", "serve_poll_interval=1"]


def run(lab_dir: Path, *argv: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(lab_dir)}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def pyinfra(lab_dir: Path, *args: str, timeout: int = 900) -> tuple[int, str, float]:
    started = time.monotonic()
    done = run(lab_dir, str(BIN / "pyinfra"), "-y", inventory(lab_dir), *args, timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def changed(output: str) -> str:
    """The Success column of pyinfra's "Grand total" row ("-" when nothing ran)."""
    line = next(line for line in output.splitlines() if re.match(r"^\s+Grand total", line))
    return line.split()[3]


def containers(nodes: list[Node]) -> dict[str, list[tuple[str, ...]]]:
    """Per node: (name, id, StartedAt, RestartCount) of every container, running or not."""
    fmt = "{{.Name}} {{.Id}} {{.State.StartedAt}} {{.RestartCount}}"
    found = {}
    for node in nodes:
        _, ids = node.run("docker ps -aq")
        rows: list[tuple[str, ...]] = []
        if ids.split():
            _, out = node.run(f"docker inspect --format '{fmt}' {' '.join(ids.split())}")
            rows = sorted(tuple(line.split()) for line in out.splitlines() if line.strip())
        found[node.name] = rows
    return found


def status(lab_dir: Path) -> dict[str, Any]:
    doc = cluster.status(lab_dir)
    assert doc is not None
    return doc


def api_key(lab_dir: Path) -> str:
    return Path(status(lab_dir)["api_key_file"]).read_text().strip().split("=")[-1]


def client(lab_dir: Path, key: str | None = None) -> openai.OpenAI:
    doc = status(lab_dir)
    key = api_key(lab_dir) if key is None else key
    return openai.OpenAI(base_url=doc["endpoint"], api_key=key, max_retries=0, timeout=60)


def complete(lab_dir: Path, prompt: str = "hello") -> str:
    api = client(lab_dir)
    model = api.models.list().data[0].id
    answer = api.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=8
    )
    return answer.choices[0].message.content or ""


def plan(lab_dir: Path) -> dict[str, Any]:
    done = run(lab_dir, str(BIN / "ironserve"), "plan", "-i", inventory(lab_dir), "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(done.stdout)
    return doc[0] if isinstance(doc, list) else doc  # type: ignore[no-any-return]


def health(lab_dir: Path, *args: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    done = run(lab_dir, str(BIN / "ironserve"), "health", "-i", inventory(lab_dir), "--json", *args)
    took = time.monotonic() - started
    assert done.stdout.strip(), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout), took


def not_ok(report: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (r["node"], r["check"], r["status"], r["runbook"])
        for r in report["results"]
        if r["status"] != "OK"
    }
