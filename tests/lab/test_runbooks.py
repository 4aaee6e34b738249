"""Every command of every runbook (ironserve/runbooks/data/*.md) runs on a lab, in the runbook's
order, so a runbook cannot rot.

For each runbook: its ``lab_faults`` are injected on the node concerned (the last node, or the
head for faults on the head), the Diagnosis commands run and must exit as annotated
(``# exits N``; 0 otherwise); ``lab_heal: yes`` runbooks' Fix starts with a hardware repair
(reseat, cable, power-cycle), which in the lab is ``ironserve lab heal``; then the Fix commands
run, and Verification must exit 0. A command's usage error (exit 2 with "Usage:") never counts.
The commands are those `ironserve runbook -i inventories/lab.py ID --node NODE --json` prints,
placeholders filled from the lab's inventory and Plan (so the CLI's filling is tested too).

Labs (LABS), by the runbooks' ``lab_profile``: two 2-node gpu2 labs that serve (vLLM 0.11 on Ray,
TP 1 x PP 4, on the lab's stand-in engine: the ray-nodes runbook needs Ray, which the real vLLM's
CPU build cannot run; every other runbook's commands are filled from the Plan the same way for
either launch) for the serving and most NVIDIA runbooks -- the first deployed by the
``first-deploy`` runbook itself, the second by deploys/site.py for the runbooks in
SECOND_SERVING -- and, provisioned only (deploys/provision.py), a 1-node h100x8 lab (NVSwitch
fabric manager, IB HCAs), a 1-node ascend910bx8 and a 1-node va16 lab (the lab runs no MindIE or
vllm_vacc engine). The first serving lab's runbooks run in the test's thread, all the others in
one background thread beside it (halving the wall time on two cores), each lab's in order; a
runbook's test reports its own commands either way.

Commands that cannot run in the lab must be listed in ALLOWLIST with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import paramiko
import pytest

from ironserve.lab import cluster
from ironserve.lab import state as st
from ironserve.runbooks import Runbook, fill, load_all
from tests.lab.conftest import BIN, ROOT, Node, lab_in

pytestmark = pytest.mark.lab
INVENTORY = "inventories/lab.py"
# command template (as written in the runbook) -> why the lab cannot run it. Keep it tiny.
ALLOWLIST: dict[str, str] = {}
SERVING = "gpu2"
RAY_VLLM = "0.11.0"  # ironserve.lab.engine_image.RAY_STANDIN_VLLM
# lab -> (profile, nodes, the deploy that readies it). The serving lab is deployed by the
# first-deploy runbook itself; a second serving lab (deploys/site.py) takes the runbooks in
# SECOND_SERVING beside it, in the background thread, with the provisioned-only labs.
LABS: dict[str, tuple[str, int, str | None]] = {
    "gpu2": (SERVING, 2, None),
    "gpu2-b": (SERVING, 2, "deploys/site.py"),
    "h100x8": ("h100x8", 1, "deploys/provision.py"),
    "ascend910bx8": ("ascend910bx8", 1, "deploys/provision.py"),
    "va16": ("va16", 1, "deploys/provision.py"),
}
SECOND_SERVING = {"gpu-ecc", "gpu-row-remap", "gpu-xid", "ray-nodes", "weights-corrupt"}
# Developers: IRONSERVE_RUNBOOK_LABS=DIR keeps the labs in DIR/<lab> between runs (reused when
# already up, left up at the end: `IRONSERVE_LAB_DIR=DIR/<lab> ironserve lab down`).
KEEP = os.environ.get("IRONSERVE_RUNBOOK_LABS")
HEAD_FAULTS = {"engine-stopped-head"}
# Faults the lab CLI does not have: done here, on the node, as the failure would leave it.
CORRUPT_SHARD = (
    "f=$(ls {weights_path}/*.safetensors | head -1) && "
    "printf 'X' | dd of=\"$f\" bs=1 seek=64 conv=notrunc status=none"
)
COMMAND_TIMEOUT = 600
BOOKS = load_all()
# first-deploy first: it brings the serving site up for every runbook after it.


def lab_of(book: Runbook) -> str:
    if book.lab_profile != SERVING:
        return book.lab_profile
    return "gpu2-b" if book.id in SECOND_SERVING else "gpu2"


# The background thread's runbooks: the provisioned-only labs', then the second serving lab's.
ASIDE = sorted(
    (i for i in BOOKS if lab_of(BOOKS[i]) != "gpu2"),
    key=lambda i: (lab_of(BOOKS[i]) == "gpu2-b", lab_of(BOOKS[i]), i),
)
ORDER = [
    *sorted((i for i in BOOKS if i not in ASIDE), key=lambda i: (i != "first-deploy", i)),
    *ASIDE,
]


def _log(message: str) -> None:
    print(f"[runbooks] {message}", flush=True)


def _sh(command: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """``command`` in bash at the project root, on the lab in ``directory``."""
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "IRONSERVE_LAB_DIR": str(directory),
        "IRONSERVE_LAB_ENGINE_VERSION": RAY_VLLM,
        "COLUMNS": "200",  # rich tables readable in a failure's output
    }
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    _log(f"{directory.name}: {time.monotonic() - started:5.1f}s rc {done.returncode}: {command}")
    return done


# A CLI's usage error (unknown command or option, a missing argument) also exits 2; typer and
# click print it in an "Error" box or as "Error: ...". It is never the result a runbook means.
USAGE = re.compile(r"^(Usage: |Error: |\u256d\u2500 Error \u2500)", re.M)


def _check(done: subprocess.CompletedProcess[str], expected: int, what: str) -> str | None:
    out = done.stdout + done.stderr
    if done.returncode == expected and not USAGE.search(out):
        return None
    return f"{what}: exited {done.returncode}, expected {expected}\n{out[-3000:]}"


class Labs:
    """One lab per profile, brought up on first use, all taken down at the end; the runbooks of
    the provisioned-only labs run in a background thread (``aside``)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.up: dict[str, tuple[Path, st.LabState]] = {}
        self.stack = ExitStack()
        self.lock = threading.Lock()  # one lab made at a time (images, subnets)
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="runbooks-aside")
        self.aside: dict[str, Future[list[str]]] = {}

    def start_aside(self, ids: list[str]) -> None:
        """Queue ``ids`` on the background thread, run one after the other."""
        for runbook_id in ids:
            self.aside[runbook_id] = self.pool.submit(self.run, runbook_id)

    def get(self, name: str) -> tuple[Path, st.LabState]:
        profile, nodes, deploy = LABS[name]
        with self.lock:
            if name not in self.up:
                directory = self.base / name
                directory.mkdir(parents=True, exist_ok=True)
                state = st.load(directory) if KEEP else None
                if state is None:
                    started = time.monotonic()
                    if KEEP:
                        state = cluster.up(nodes, profile, directory=directory)
                    else:
                        state = self.stack.enter_context(lab_in(directory, nodes, profile))
                    _log(f"{name}: lab up in {time.monotonic() - started:.1f}s")
                self.up[name] = (directory, state)
        directory, state = self.up[name]
        marker = directory / "deployed"
        if deploy is not None and not marker.exists():
            problem = _check(_sh(f"pyinfra -y {INVENTORY} {deploy}", directory), 0, deploy)
            assert problem is None, f"readying the {name} lab: {problem}"
            marker.touch()
        return directory, state

    def run(self, runbook_id: str) -> list[str]:
        """Run every command of the runbook on its lab; the problems found (none: it passed)."""
        book = BOOKS[runbook_id]
        directory, state = self.get(lab_of(book))
        on_head = set(book.lab_faults) & HEAD_FAULTS
        node = Node(state, state.nodes[0 if on_head or not book.lab_faults else -1])
        shown = _sh(
            f"ironserve runbook -i {INVENTORY} {runbook_id} --node {node.name} --json", directory
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
            _inject(book, node, values, directory)
            for section in ("Diagnosis", "Fix", "Verification"):
                if section == "Fix" and book.lab_heal:
                    done = _sh(f"ironserve lab heal {node.name}", directory)
                    problems.append(_check(done, 0, "lab heal") or "")
                for command, shown_command in zip(book.commands, filled, strict=True):
                    if command.section != section or command.text in ALLOWLIST:
                        continue
                    if self.stopping.is_set():
                        return [*problems, "stopped: the test session is ending"]
                    line = shown_command["command"]
                    done = _sh(line, directory)
                    problems.append(_check(done, command.exit_code, f"{section}: $ {line}") or "")
            if any(problems):
                problems.append(_containers_report(state))
        finally:
            if book.lab_faults:  # the next runbook starts from a healthy node
                _sh(f"ironserve lab heal {node.name}", directory)
        return [p for p in problems if p]

    def close(self) -> None:
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.stack.close()


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


def _containers_report(state: st.LabState) -> str:
    lines = ["Containers on the lab's nodes:"]
    for lab_node in state.nodes:
        try:
            code, out = Node(state, lab_node).run(CONTAINERS_REPORT, check=False)
        except (OSError, paramiko.SSHException) as error:  # a node down answers nothing
            code, out = -1, f"unreachable: {error}"
        lines.append(f"{lab_node.name} (exit {code}):\n{out.rstrip()}")
    return "\n".join(lines)


def _inject(book: Runbook, node: Node, values: dict[str, str], directory: Path) -> None:
    for fault in book.lab_faults:
        started = time.monotonic()
        if fault in ("engine-stopped", "engine-stopped-head"):
            node.run(f"docker kill {values['container']}")  # as a crash leaves it
        elif fault == "weights-corrupt":
            node.run(fill(CORRUPT_SHARD, values))
        else:
            done = _sh(f"ironserve lab fault {node.name} {fault}", directory)
            assert done.returncode == 0, done.stdout + done.stderr
        _log(f"{node.name}: fault {fault} in {time.monotonic() - started:.1f}s")


@pytest.fixture(scope="module")
def labs(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labs]:
    labs = Labs(Path(KEEP) if KEEP else tmp_path_factory.mktemp("lab-runbooks"))
    try:
        yield labs
    finally:
        labs.close()


def test_allowlist_names_real_commands() -> None:
    written = {c.text for b in BOOKS.values() for c in b.commands}
    assert set(ALLOWLIST) <= written, "ALLOWLIST entries no runbook contains any more"
    assert len(ALLOWLIST) <= 3, "keep the list of commands the lab cannot run tiny"


@pytest.mark.parametrize("runbook_id", ORDER)
def test_runbook_commands_run_on_the_lab(
    labs: Labs, runbook_id: str, request: pytest.FixtureRequest
) -> None:
    if not labs.aside:  # the first runbook: start the others' labs beside the serving one
        items = request.session.items
        selected = {
            getattr(i, "callspec", None) and i.callspec.params.get("runbook_id") for i in items
        }
        labs.start_aside([i for i in ASIDE if i in selected])
    if runbook_id in labs.aside:
        problems = labs.aside[runbook_id].result(timeout=len(ASIDE) * COMMAND_TIMEOUT)
    else:
        problems = labs.run(runbook_id)
    assert not problems, f"runbook {runbook_id}:\n" + "\n\n".join(problems)
