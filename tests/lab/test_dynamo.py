"""NVIDIA Dynamo on the lab, end to end, on `make demo-disagg`'s shape: 3 x labgpu, the lab's
Dynamo inventory (inventories/lab_dynamo.py): etcd, NATS and the frontend with the KV router on
the first node, a prefill worker on the second, a decode worker on the third, disaggregated.

Real: Dynamo 1.6.1's frontend and KV router, Debian bookworm's etcd 3.4 and nats-server 2.9, the
gateway's nginx, Docker, SSH, pyinfra. The workers run the command line ironserve renders for
``dynamo.vllm``, checked against Dynamo's and vLLM 0.31's flag tables and served by Dynamo's
mocker (the lab has no GPU: lab/engine/dynamo_vllm_cli.py).

deploys/site.py from bare nodes brings every component up; the `openai` client gets a completion
through the gateway and the frontend with the key (refused without); the frontend's metrics
count it, its KV router admitted it to both pools, and each worker's own metrics show it took
its part (prefill on one node, decode on the other). A second run changes nothing.
`ironserve health` is OK, every worker registered in etcd. Then the Dynamo runbooks
(``lab_profile: labgpu-dynamo``: a lost decode worker, a lost prefill worker, etcd down, the
decode side of the KV handover frozen) run on this lab through tests/lab/runbook_runner.py, the
runner tests/lab/test_runbooks.py uses: each fault FAILs health as its runbook says, and the
runbook's Fix (deploys/restart.py) heals it, health OK again -- no second lab bring-up.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ironserve.lab import dynamo_image
from ironserve.lab import state as st
from ironserve.lab.state import DYNAMO_ENV
from ironserve.runbooks import load_all
from tests.lab.conftest import BIN, Node, lab_in, nodes_of
from tests.lab.runbook_runner import node_for, on_dynamo_lab, run_runbook
from tests.lab.serving import (
    FAST,
    api_key,
    changed,
    client,
    complete,
    containers,
    health,
    plan,
    pyinfra,
    run,
    status,
)

pytestmark = pytest.mark.lab

GROUP = "ironserve-default"
FRONTEND, ETCD, NATS = f"{GROUP}-frontend", f"{GROUP}-etcd", f"{GROUP}-nats"
PREFILL, DECODE = f"{GROUP}-prefill-0", f"{GROUP}-decode-0"
SYSTEM_PORT = 18100  # each node's first worker (engines/dynamo.py SYSTEM_PORT_BASE)
INVENTORY = "inventories/lab_dynamo.py"
# The runbooks this lab runs (test_runbooks.py runs every other one).
RUNBOOKS = sorted(i for i, b in load_all().items() if on_dynamo_lab(b))


def _print(message: str) -> None:
    print(f"[lab-dynamo] {message}", flush=True)


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("dynamo-lab")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DYNAMO_ENV, "1")  # a lab serving Dynamo: its images in the lab registry
        with lab_in(directory, 3, "labgpu"):
            _print(f"lab up {time.monotonic() - started:.1f}s")
            code, out, took = pyinfra(directory, "deploys/site.py", "-vv", *FAST)
            assert code == 0, out[-6000:]
            assert changed(out) not in ("-", "0")
            assert api_key(directory) not in out
            _print(f"site.py from bare nodes {took:.1f}s")
            yield directory


def _prometheus(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        sample = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if sample is None or sample[1] != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', sample[2] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(sample[3])
    return total


def _frontend_metrics(lab: Path) -> str:
    root = status(lab)["endpoint"].removesuffix("/v1")
    bearer = {"Authorization": f"Bearer {api_key(lab)}"}
    return httpx.get(f"{root}/metrics", headers=bearer, timeout=30).text


def _worker_metrics(node: Node) -> str:
    _, text = node.run(f"curl -sS 127.0.0.1:{SYSTEM_PORT}/metrics")
    return text


def _running(node: Node) -> set[str]:
    _, out = node.run("docker ps --format '{{.Names}}'")
    return set(out.split())


def test_the_control_plane_frontend_and_pools_run_on_their_nodes(lab: Path) -> None:
    doc = plan(lab)
    pools = {p["name"]: p["nodes"] for p in doc["dynamo"]["pools"]}
    head, prefill, decode = nodes_of(lab)
    assert pools == {"prefill": [prefill.name], "decode": [decode.name]}
    assert {ETCD, NATS, FRONTEND} <= _running(head)
    assert PREFILL in _running(prefill) and DECODE in _running(decode)
    assert not {PREFILL, DECODE} & _running(head)
    _, ps = head.run("ps -eo args")
    assert re.search(r"^etcd --name default ", ps, re.MULTILINE), ps
    assert re.search(r"^nats-server -js ", ps, re.MULTILINE), ps
    assert re.search(r"python3 -m dynamo.frontend .*--router-mode kv", ps), ps
    for node, side in ((prefill, "prefill"), (decode, "decode")):
        _, ps = node.run("ps -eo args")
        # The rendered dynamo.vllm line, checked, then Dynamo's own mocker on the same side.
        assert re.search(rf"-m dynamo.mocker .*--disaggregation-mode {side}", ps), ps
        _, log = node.run(f"docker logs {GROUP}-{side}-0 2>&1")
        version = f"dynamo {dynamo_image.VERSION} (vllm 0.31.0)"
        assert f"options checked against {version}" in log, log[-3000:]
    # etcd holds both pools' registrations (the decode pool's component is Dynamo's "backend");
    # NATS has the frontend and both workers connected.
    everything = {"key": "AA==", "range_end": "AA==", "keys_only": True}  # every key
    _, out = head.run(
        f"curl -sS -X POST http://{head.node.address}:2379/v3/kv/range "
        f"-d '{json.dumps(everything)}'"
    )
    keys = [base64.b64decode(kv["key"]).decode() for kv in json.loads(out)["kvs"]]
    for component in ("prefill", "backend"):
        assert any(k.startswith(f"v1/instances/default/{component}/generate/") for k in keys), keys
    _, out = head.run(f"curl -sS http://{head.node.address}:8222/connz")
    assert json.loads(out)["num_connections"] >= 3, out


def test_a_disaggregated_completion_goes_through_prefill_and_decode(lab: Path) -> None:
    _, prefill, decode = nodes_of(lab)
    model = plan(lab)["served_model_name"]
    before = _frontend_metrics(lab), _worker_metrics(prefill), _worker_metrics(decode)
    assert complete(lab, "Say hello.").strip()
    after = _frontend_metrics(lab), _worker_metrics(prefill), _worker_metrics(decode)

    generate = {"dynamo_endpoint": "generate"}

    def grew(index: int, name: str, **labels: str) -> bool:
        return _prometheus(after[index], name, **labels) > _prometheus(
            before[index], name, **labels
        )

    assert grew(0, "dynamo_frontend_requests_total", model=model, status="success")
    for side in ("prefill", "decode"):  # the KV router admitted it to both pools
        assert grew(0, "dynamo_frontend_router_admission_received_total", worker_type=side)
    # ...and each worker served its part: the prefill pool's endpoint, then the decode worker's
    # (Dynamo names the decode pool's component "backend").
    assert grew(1, "dynamo_component_requests_total", dynamo_component="prefill", **generate)
    assert grew(2, "dynamo_component_requests_total", dynamo_component="backend", **generate)
    with pytest.raises(openai.AuthenticationError):
        client(lab, key="wrong").models.list()
    assert httpx.get(f"{status(lab)['endpoint']}/models", timeout=10).status_code == 401


def test_lab_status_and_chat_give_the_frontend(lab: Path) -> None:
    doc = status(lab)
    gateway = plan(lab)["gateway"]
    head = nodes_of(lab)[0].node.address
    assert doc["endpoint"] == f"http://{head}:{gateway['port']}/v1"
    assert Path(doc["api_key_file"]).stat().st_mode & 0o777 == 0o600
    assert doc["inventory"].endswith("inventories/lab_dynamo.py")
    done = run(lab, str(BIN / "ironserve"), "lab", "chat", "Say hello.")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"endpoint: {doc['endpoint']}" in done.stdout
    assert "SmolLM2-135M-Instruct: " in done.stdout


def test_a_second_run_changes_nothing(lab: Path) -> None:
    nodes = nodes_of(lab)
    before = containers(nodes)
    code, out, took = pyinfra(lab, "deploys/site.py", *FAST)
    assert code == 0, out[-4000:]
    assert changed(out) in ("-", "0"), out[-4000:]
    assert containers(nodes) == before
    _print(f"site.py again: 0 changes in {took:.1f}s")


def test_health_is_ok_with_every_worker_registered(lab: Path) -> None:
    code, report, took = health(lab)
    _print(f"health (default tier) {took:.1f}s: {report['summary']}")
    failing = [r for r in report["results"] if r["status"] != "OK"]
    assert (code, failing) == (0, []), [(r["node"], r["check"], r["observed"]) for r in failing]
    _, prefill, decode = nodes_of(lab)
    for check in (
        "cluster.dynamo_worker_health",
        "cluster.dynamo_discovery",
        "cluster.dynamo_worker_metrics",  # each worker's own /metrics, judged OK
    ):
        workers = {r["node"] for r in report["results"] if r["check"] == check}
        assert workers == {prefill.name, decode.name}, check
    metrics = {
        r["node"]: r["observed"]
        for r in report["results"]
        if r["check"] == "cluster.dynamo_worker_metrics"
    }
    # Both pools served this lab's completions (an error or two from a hung-up client would be
    # counted here and judged OK; see health/dynamo_worker_metrics.py).
    for node in (prefill, decode):
        assert re.search(r"[1-9][0-9]* requests to generate, [0-9]+ errors", metrics[node.name])
    assert "KV cache" in metrics[decode.name], metrics  # the mocker's vLLM series, judged
    checks = {r["check"] for r in report["results"]}
    assert {"cluster.dynamo_control_plane", "serving.dynamo_metrics"} <= checks


@pytest.mark.parametrize("runbook_id", RUNBOOKS)
def test_runbook_commands_run_on_the_lab(lab: Path, runbook_id: str) -> None:
    book = load_all()[runbook_id]
    state = st.load(lab)
    assert state is not None
    pools = {p["name"]: p["nodes"] for p in plan(lab)["dynamo"]["pools"]}
    node = node_for(book, state, pools)
    started = time.monotonic()
    problems = run_runbook(book, node, lab, INVENTORY, {DYNAMO_ENV: "1"})
    _print(f"runbook {runbook_id} on {node.name} {time.monotonic() - started:.1f}s")
    assert not problems, f"runbook {runbook_id}:\n" + "\n\n".join(problems)
