"""Running one runbook's commands on a lab, the way an operator would: shared by
tests/lab/test_runbooks.py (its own labs) and tests/lab/test_dynamo.py (the Dynamo lab, whose
runbooks have ``lab_profile: labgpu-dynamo``; test_runbooks.py leaves those out).

For a runbook: its ``lab_faults`` are injected on the node concerned (:data:`FAULT_NODES`),
the Diagnosis commands run and must exit as annotated (``# exits N``; 0 otherwise);
``lab_heal: yes`` runbooks' Fix starts with a hardware repair (reseat, cable, power-cycle), which
in the lab is ``ironserve lab heal``; then the Fix commands run, and Verification must exit 0. A
command's usage error (exit 2 with "Usage:") never counts. The commands are those
`ironserve runbook -i INVENTORY ID --node NODE --json` prints, placeholders filled from the lab's
inventory and Plan (so the CLI's filling is tested too).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import paramiko

from ironserve.lab import state as st
from ironserve.runbooks import DYNAMO_LAB, Runbook, fill
from tests.lab.conftest import BIN, ROOT, Node

COMMAND_TIMEOUT = 600
# command template (as written in the runbook) -> why the lab cannot run it. Keep it tiny.
ALLOWLIST: dict[str, str] = {}
# Faults the lab CLI does not have: done here, on the node, as the failure would leave it
# (``{...}``: the runbook's values for that node). The others are `ironserve lab fault` kinds.
CORRUPT_SHARD = (
    "f=$(ls {weights_path}/*.safetensors | head -1) && "
    "printf 'X' | dd of=\"$f\" bs=1 seek=64 conv=notrunc status=none"
)
NODE_FAULTS: dict[str, str] = {
    "engine-stopped": "docker kill {container}",  # as a crash leaves it
    "engine-stopped-head": "docker kill {container}",
    "weights-corrupt": CORRUPT_SHARD,
    # A Dynamo group (inventories/lab_dynamo.py): the decode worker crashed (its registration
    # lingers until its lease expires, which the restart waits out), the prefill worker stopped
    # (it deregisters as it exits: the same FAILs, without that wait), etcd crashed, and the
    # decode worker frozen -- running for Docker, silent, its lease left to expire.
    "dynamo-decode-stopped": "docker kill {container}",
    "dynamo-prefill-stopped": "docker stop {container}",
    "dynamo-etcd-stopped": "docker kill ironserve-{group}-etcd",
    "dynamo-decode-frozen": "docker pause {container}",
}
# Which node of the lab a fault goes on (the runbook is filled for it): the head, the lab's
# last node, or the first node of a Dynamo pool (inventories/lab_dynamo.py: head, prefill,
# decode). Runbooks without faults run for the head; any other fault for the last node.
FAULT_NODES: dict[str, str] = {
    "engine-stopped-head": "head",
    "dynamo-etcd-stopped": "head",
    "dynamo-decode-stopped": "decode",
    "dynamo-decode-frozen": "decode",
    "dynamo-prefill-stopped": "prefill",
}
LAB_TEST_FAULTS = frozenset(NODE_FAULTS) | {"disk-full", "node-down"}


def on_dynamo_lab(book: Runbook) -> bool:
    """Whether tests/lab/test_dynamo.py runs ``book`` (else tests/lab/test_runbooks.py does)."""
    return book.lab_profile == DYNAMO_LAB


def log(message: str) -> None:
    print(f"[runbooks] {message}", flush=True)


def sh(
    command: str, directory: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` in bash at the project root, on the lab in ``directory``."""
    full = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "IRONSERVE_LAB_DIR": str(directory),
        "COLUMNS": "200",  # rich tables readable in a failure's output
        **(env or {}),
    }
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    log(f"{directory.name}: {time.monotonic() - started:5.1f}s rc {done.returncode}: {command}")
    return done


# A CLI's usage error (unknown command or option, a missing argument) also exits 2; typer and
# click print it in an "Error" box or as "Error: ...". It is never the result a runbook means.
USAGE = re.compile(r"^(Usage: |Error: |\u256d\u2500 Error \u2500)", re.M)


def check(done: subprocess.CompletedProcess[str], expected: int, what: str) -> str | None:
    out = done.stdout + done.stderr
    if done.returncode == expected and not USAGE.search(out):
        return None
    return f"{what}: exited {done.returncode}, expected {expected}\n{out[-3000:]}"


def node_for(book: Runbook, state: st.LabState, pools: dict[str, list[str]] | None = None) -> Node:
    """The lab node ``book`` is filled for and its faults go on (``pools``: a Dynamo lab's pool
    -> nodes, from its Plan)."""
    wanted = {FAULT_NODES.get(f, "last") for f in book.lab_faults} or {"head"}
    assert len(wanted) == 1, f"{book.id}: faults on different nodes {sorted(wanted)}"
    (where,) = wanted
    if where == "head":
        return Node(state, state.nodes[0])
    if where == "last":
        return Node(state, state.nodes[-1])
    assert pools and pools.get(where), f"{book.id}: no {where} pool in the lab's Plan"
    return Node(state, state.node(pools[where][0]))


def inject(
    book: Runbook,
    node: Node,
    values: dict[str, str],
    directory: Path,
    env: dict[str, str] | None = None,
) -> None:
    for fault in book.lab_faults:
        started = time.monotonic()
        if fault in NODE_FAULTS:
            node.run(fill(NODE_FAULTS[fault], values))
        else:
            done = sh(f"ironserve lab fault {node.name} {fault}", directory, env)
            assert done.returncode == 0, done.stdout + done.stderr
        log(f"{node.name}: fault {fault} in {time.monotonic() - started:.1f}s")


def run_runbook(
    book: Runbook,
    node: Node,
    directory: Path,
    inventory: str,
    env: dict[str, str] | None = None,
    stopping: threading.Event | None = None,
) -> list[str]:
    """Run every command of ``book`` for ``node`` on the lab in ``directory``; the problems
    found (none: it passed). The node is healed (``ironserve lab heal``) after a fault."""
    shown = sh(
        f"ironserve runbook -i {inventory} {book.id} --node {node.name} --json", directory, env
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    doc = json.loads(shown.stdout)
    values, filled = doc["values"], doc["commands"]
    assert [(c["section"], c["exit_code"]) for c in filled] == [
        (c.section, c.exit_code) for c in book.commands
    ]
    assert not [c["command"] for c in filled if re.search(r"\{[a-z_]+\}", c["command"])]
    problems: list[str] = []
    try:
        inject(book, node, values, directory, env)
        for section in ("Diagnosis", "Fix", "Verification"):
            if section == "Fix" and book.lab_heal:
                done = sh(f"ironserve lab heal {node.name}", directory, env)
                problems.append(check(done, 0, "lab heal") or "")
            for command, shown_command in zip(book.commands, filled, strict=True):
                if command.section != section or command.text in ALLOWLIST:
                    continue
                if stopping is not None and stopping.is_set():
                    return [*problems, "stopped: the test session is ending"]
                line = shown_command["command"]
                done = sh(line, directory, env)
                problems.append(check(done, command.exit_code, f"{section}: $ {line}") or "")
        if any(problems):
            problems.append(containers_report(node.state))
    finally:
        if book.lab_faults:  # the next runbook starts from a healthy node
            sh(f"ironserve lab heal {node.name}", directory, env)
    return [p for p in problems if p]


# On a failure: each node's containers as dockerd saw them (a crash's exit code, OOMKilled, when
# it finished) and their last log lines, so a failure in CI says what happened on the nodes.
CONTAINERS_REPORT = (
    "for c in $(docker ps -aq); do "
    "docker inspect --format '{{.Name}} {{.State.Status}} restarts={{.RestartCount}} "
    "exit={{.State.ExitCode}} oom={{.State.OOMKilled}} started={{.State.StartedAt}} "
    "finished={{.State.FinishedAt}} error={{.State.Error}}' $c; "
    "{ docker logs $c 2>&1 | grep -iE 'exited unexpectedly|died|killed|traceback|error' | tail -8; "
    "docker logs --tail 12 $c 2>&1; } | sed 's/^/    /'; done"
)


def containers_report(state: st.LabState) -> str:
    lines = ["Containers on the lab's nodes:"]
    for lab_node in state.nodes:
        try:
            code, out = Node(state, lab_node).run(CONTAINERS_REPORT, check=False)
        except (OSError, paramiko.SSHException) as error:  # a node down answers nothing
            code, out = -1, f"unreachable: {error}"
        lines.append(f"{lab_node.name} (exit {code}):\n{out.rstrip()}")
    return "\n".join(lines)
