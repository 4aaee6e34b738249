"""The lab for tests: brought up once per session, torn down at the end (only what it created).

The session's lab lives in its own folder (IRONSERVE_LAB_DIR, set for the whole session so
inventories/lab.py and the `ironserve`/`pyinfra` subprocesses find it), so a developer's own lab
(.lab/) is left alone. A lab test never skips: without its prerequisites (`make test` sets them
up with `ironserve lab setup`) it fails naming what is missing. `pytest -m "not lab"` is the quick
loop that leaves the lab out.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko
import pytest

from ironserve.lab import cluster, host
from ironserve.lab import state as st

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODES = 3
PROFILE = "h100x8"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the lab's engine carries the `lab` mark, so `-m "not lab"` leaves out
    exactly the lab."""
    for item in items:
        if "docker_client" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "lab"
        ):
            raise pytest.UsageError(f"{item.nodeid} uses the lab but is not marked `lab`")


@functools.cache
def _missing_prerequisites() -> str:
    missing = [c for c in host.doctor() if c.status == "missing"]
    return "; ".join(f"{c.name}: {c.observed} -> {c.remedy}" for c in missing)


def require_lab() -> Any:
    """The engine the lab runs on; a missing prerequisite fails the test, naming it."""
    missing = _missing_prerequisites()
    if missing:
        pytest.fail(f"the lab's prerequisites are missing (`make test` sets them up): {missing}")
    return cluster.connect()


@pytest.fixture(scope="session")
def docker_client() -> Any:
    return require_lab()


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("lab")
    old = os.environ.get("IRONSERVE_LAB_DIR")
    os.environ["IRONSERVE_LAB_DIR"] = str(directory)
    yield directory
    if old is None:
        os.environ.pop("IRONSERVE_LAB_DIR", None)
    else:
        os.environ["IRONSERVE_LAB_DIR"] = old


@pytest.fixture(scope="session")
def lab(docker_client: Any, lab_dir: Path) -> Iterator[st.LabState]:
    """A 3-node h100x8 lab (full nodes: nested dockerd, /data disk), up for the whole session;
    it serves no engine, so it does not wait for the real vLLM's image."""
    state = cluster.up(
        nodes=NODES, profile=PROFILE, light=False, directory=lab_dir, real_vllm=False
    )
    try:
        yield state
    finally:
        cluster.down(lab_dir)
        left = _labelled(docker_client, state.lab_id)
        assert not left, f"lab down left {left}"


@contextmanager
def lab_in(
    directory: Path, nodes: int, profile: str, *, light: bool = False, real_vllm: bool = True
) -> Iterator[st.LabState]:
    """A lab of its own in ``directory`` for one test module, removed afterwards.
    ``real_vllm=False`` for suites that serve neither the real vLLM nor its model: such a lab
    comes up without waiting for the real vLLM's image (minutes on a cold machine)."""
    require_lab()
    state = cluster.up(
        nodes=nodes, profile=profile, light=light, directory=directory, real_vllm=real_vllm
    )
    try:
        yield state
    finally:
        cluster.down(directory)


def _labelled(client: Any, lab_id: str) -> list[str]:
    label = {"label": f"{st.LABEL_ID}={lab_id}"}
    return (
        [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
        + [f"network {n.name}" for n in client.networks.list(filters=label)]
        + [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    )


class Node:
    """One lab node over real SSH (paramiko), its host key checked against the lab's
    known_hosts (unknown or changed keys are refused)."""

    def __init__(self, state: st.LabState, node: st.NodeState) -> None:
        self.state, self.node, self.name = state, node, node.name

    def client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_host_keys(self.state.known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            "127.0.0.1",
            port=self.node.ssh_port,
            username="root",
            key_filename=self.state.ssh_key,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        return client

    def run(self, command: str, check: bool = True) -> tuple[int, str]:
        client = self.client()
        try:
            _, stdout, stderr = client.exec_command(command, timeout=120)
            out = stdout.read().decode() + stderr.read().decode()
            code = stdout.channel.recv_exit_status()
        finally:
            client.close()
        if check and code != 0:
            raise AssertionError(f"{self.name}: {command!r} exited {code}: {out}")
        return code, out


@pytest.fixture(scope="session")
def labelled(docker_client: Any) -> Any:
    """lab id -> the containers, networks and volumes carrying that lab's label."""
    return lambda lab_id: _labelled(docker_client, lab_id)


@pytest.fixture(scope="session")
def nodes(lab: st.LabState) -> list[Node]:
    return [Node(lab, n) for n in lab.nodes]


def nodes_of(lab_dir: Path) -> list[Node]:
    """The nodes of the lab recorded in ``lab_dir`` (a module's own lab)."""
    state = st.load(lab_dir)
    assert state is not None, f"no lab in {lab_dir}"
    return [Node(state, n) for n in state.nodes]
