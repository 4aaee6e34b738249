"""Every command of every runbook (ironserve/runbooks/data/*.md) runs on a lab, in the runbook's
order, so a runbook cannot rot: tests/lab/runbook_runner.py says how (faults, Diagnosis, heal,
Fix, Verification). The Dynamo runbooks (``lab_profile: labgpu-dynamo``) run on
tests/lab/test_dynamo.py's lab instead, through the same runner, and are left out here.

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

Commands that cannot run in the lab must be listed in runbook_runner.ALLOWLIST with the reason.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from ironserve.lab import cluster
from ironserve.lab import state as st
from ironserve.runbooks import Runbook, load_all
from tests.lab.conftest import lab_in
from tests.lab.runbook_runner import (
    ALLOWLIST,
    COMMAND_TIMEOUT,
    check,
    log,
    node_for,
    on_dynamo_lab,
    run_runbook,
    sh,
)

pytestmark = pytest.mark.lab
INVENTORY = "inventories/lab.py"
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
ENV = {"IRONSERVE_LAB_ENGINE_VERSION": RAY_VLLM}
BOOKS = {i: b for i, b in load_all().items() if not on_dynamo_lab(b)}
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
                    log(f"{name}: lab up in {time.monotonic() - started:.1f}s")
                self.up[name] = (directory, state)
        directory, state = self.up[name]
        marker = directory / "deployed"
        if deploy is not None and not marker.exists():
            problem = check(sh(f"pyinfra -y {INVENTORY} {deploy}", directory, ENV), 0, deploy)
            assert problem is None, f"readying the {name} lab: {problem}"
            marker.touch()
        return directory, state

    def run(self, runbook_id: str) -> list[str]:
        """Run every command of the runbook on its lab; the problems found (none: it passed)."""
        book = BOOKS[runbook_id]
        directory, state = self.get(lab_of(book))
        node = node_for(book, state)
        return run_runbook(book, node, directory, INVENTORY, ENV, self.stopping)

    def close(self) -> None:
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.stack.close()


@pytest.fixture(scope="module")
def labs(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labs]:
    labs = Labs(Path(KEEP) if KEEP else tmp_path_factory.mktemp("lab-runbooks"))
    try:
        yield labs
    finally:
        labs.close()


def test_allowlist_names_real_commands() -> None:
    written = {c.text for b in load_all().values() for c in b.commands}
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
