"""vLLM on Ray, end to end, serving and health: the demo's inventory (3 x labgpu) with
``engine_version: 0.11.0``, the last vLLM before its own multi-node launch, deploys through a Ray
cluster. vLLM's Ray executor refuses the CPU platform, so this path runs on the lab's stand-in
engine (ironserve.lab.engine: vLLM's flags of that version, a real Ray 2.60 cluster, the weights
checked, the OpenAI API); the native launch on the real vLLM is test_serve.py.

Serving: deploys/site.py from bare nodes gives an OpenAI endpoint that answers the `openai`
client with the key and refuses it without; `ray status` in the head shows 3 nodes and 3 GPUs;
the serve command carries the Plan's TP 1 x PP 3 and `--distributed-executor-backend ray`; a
second run changes nothing and restarts nothing; a changed flag re-runs only the serve command
(the Ray containers stay); deploys/stop.py leaves nothing running; a worker node down before serve
makes the Ray wait fail within its timeout naming that node.

Firewall (roles/firewall, part of provisioning): of every TCP port the head listens on (Ray's
GCS 6379, its other ports, the API), only SSH and the API answer the lab's hub, a lab address
outside the group; a worker node of the group reaches every one.

Secrets: site.py's `pyinfra -vv --diff` output holds neither the API key, nor the hub token the
seed downloads with, nor the fan-out key; while serving, `ps -eo args` on every node holds no
secret, for vLLM (VLLM_API_KEY from the env file) and, last, SGLang on the same nodes (its key
added in-process by the entrypoint wrapper); the fan-out key, its authorized_keys line and the
hub token are gone from the nodes after the transfer.

Health (`ironserve health`, cluster and serving tiers): healthy, every tier OK, exit 0, in a few
seconds. A stopped worker engine container: the container check FAILs on exactly that node
(engine-container) and, once Ray's GCS has marked the node dead (tens of seconds),
``cluster.ray_nodes`` FAILs on that node too (ray-nodes); the serving tier stays OK, because the
stand-in answers from the head alone (the real vLLM loses a pipeline stage: test_serve.py). A
stopped head container: the head's container FAILs and its endpoint checks FAIL (endpoint-down),
Ray is UNKNOWN (unreadable), nothing on another node. deploys/restart.py heals both. A shard
changed on one node FAILs that node's weights. After deploys/stop.py the group is *not deployed*:
one WARN (first-deploy), exit 1, no serving results."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ironserve.catalog.engines import ENGINES, EngineKind
from ironserve.lab import cluster
from ironserve.lab import state as st
from tests.lab.conftest import lab_in, nodes_of
from tests.lab.serving import (
    FAST,
    api_key,
    changed,
    client,
    complete,
    containers,
    health,
    not_ok,
    plan,
    pyinfra,
    status,
)

pytestmark = pytest.mark.lab

CONTAINER = "ironserve-default-ray"
RAY_VLLM = "0.11.0"  # ironserve.lab.engine_image.RAY_STANDIN_VLLM
SGLANG_VERSION = ENGINES[EngineKind.SGLANG].default_version  # pushed by `lab up`
SERVE_CMDLINE = (
    f"docker exec {CONTAINER} sh -c "
    '\'tr "\\0" " " < /proc/$(cat /run/ironserve/serve.pid)/cmdline\''
)


RAY_NOTICE_S = 90  # Ray's GCS marks a stopped raylet's node dead within about 30 s


def _print(message: str) -> None:
    print(f"[lab-serve-ray] {message}", flush=True)


def _pyinfra(lab_dir: Path, deploy: str) -> None:
    code, out, took = pyinfra(lab_dir, deploy, *FAST)
    assert code == 0, out[-4000:]
    _print(f"{deploy} {took:.1f}s")


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("serve-ray-lab")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as env, lab_in(directory, 3, "labgpu"):
        env.setenv("IRONSERVE_LAB_ENGINE_VERSION", RAY_VLLM)  # every subprocess of the module
        env.setenv("IRONSERVE_LAB_HUB_TOKEN", "1")  # the seed downloads with the hub token
        _print(f"lab up {time.monotonic() - started:.1f}s")
        # -vv: pyinfra prints every command and fact output; --diff every file it writes. The
        # API key, the hub token and the fan-out key must be in none of them.
        keys = directory / "fanout-keys"
        code, out, took = pyinfra(
            directory,
            "deploys/site.py",
            "-vv",
            "--diff",
            "--data",
            f"weights_fanout_key_dir={keys}",
            *FAST,
        )
        assert code == 0, out[-6000:]
        assert changed(out) not in ("-", "0")
        assert "Will create" in out  # --diff printed the files the run wrote
        private = next(keys.rglob("id_ed25519")).read_text().strip().splitlines()[1:-1]
        key = (directory / "api_key").read_text().strip()
        token = (directory / "hub-token").read_text().strip()
        for secret in (key, token, *private):
            assert secret not in out
        assert "docker run -d --name ironserve-default-ray" in out  # -vv shows the commands
        _print(f"site.py from bare nodes {took:.1f}s")
        yield directory


# The TCP ports listening on the node's address (argv[1]) or on every address (/proc/net/tcp
# and tcp6; the kernel writes an IPv4 address as 8 hex digits, least significant byte first).
LISTENING = r"""
import socket, sys
mine = {"0" * 8, socket.inet_aton(sys.argv[1])[::-1].hex().upper(), "0" * 32}
ports = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and local.split(":")[0] in mine:
            ports.add(int(local.split(":")[1], 16))
print(" ".join(map(str, sorted(ports))))
"""
# Which of the ports answer (connect within 3 s), all probed at once: "port:1 port:0 ...".
PROBE = r"""
import socket, sys, threading
answers = {}
def probe(port):
    try:
        socket.create_connection((sys.argv[1], port), timeout=3).close()
        answers[port] = 1
    except OSError:
        answers[port] = 0
threads = [threading.Thread(target=probe, args=(int(p),)) for p in sys.argv[2:]]
[t.start() for t in threads]
[t.join() for t in threads]
print(" ".join(f"{p}:{a}" for p, a in sorted(answers.items())))
"""


def _answers(output: str) -> dict[int, bool]:
    pairs = [item.split(":") for item in output.split() if ":" in item]
    return {int(port): answer == "1" for port, answer in pairs}


def test_the_firewall_keeps_every_engine_port_to_the_group(lab: Path, docker_client: Any) -> None:
    head, worker = nodes_of(lab)[0], nodes_of(lab)[1]
    address = head.node.address
    api_port = int(status(lab)["endpoint"].rsplit(":", 1)[1].split("/")[0])
    _, out = head.run(f"python3 -c {shlex.quote(LISTENING)} {address}")
    ports = [int(p) for p in out.split()]
    assert {6379, api_port} <= set(ports), ports  # Ray's GCS and the API listen on the head
    args = f"{address} {' '.join(map(str, ports))}"
    _, inside = worker.run(f"python3 -c {shlex.quote(PROBE)} {args}")
    assert _answers(inside) == dict.fromkeys(ports, True), inside
    hub = docker_client.containers.get(head.state.services["hub"].container_id)
    outside = hub.exec_run(["python3", "-c", PROBE, address, *map(str, ports)]).output.decode()
    public = {22, api_port}
    assert _answers(outside) == {p: p in public for p in ports}, outside
    _, table = head.run("nft list table inet ironserve")
    assert f"ip saddr @api_ip tcp dport {api_port} accept" in table, table


def test_site_serves_the_plan_and_the_key_is_required(lab: Path) -> None:
    head = nodes_of(lab)[0]
    _, ray = head.run(f"docker exec {CONTAINER} ray status")
    assert re.search(r"^Active:\n( 1 node_[0-9a-f]+\n){3}Pending:", ray, re.M), ray
    # All 3 GPUs declared, and reserved by vLLM's placement group (TP 1 x PP 3 bundles).
    assert re.search(r" [\d.]+/3\.0 GPU \([\d.]+ used of 3\.0 reserved in placement groups\)", ray)
    doc = plan(lab)
    tp, pp = doc["tensor_parallel_size"], doc["pipeline_parallel_size"]
    assert (tp, pp) == (1, 3)
    _, cmdline = head.run(SERVE_CMDLINE)
    assert f"--tensor-parallel-size {tp} --pipeline-parallel-size {pp}" in cmdline, cmdline
    assert "--distributed-executor-backend ray" in cmdline and "api-key" not in cmdline
    assert complete(lab).strip()
    with pytest.raises(openai.AuthenticationError):
        client(lab, key="wrong").models.list()
    assert httpx.get(f"{status(lab)['endpoint']}/models", timeout=10).status_code == 401
    key = Path(status(lab)["api_key_file"])
    assert key.stat().st_mode & 0o777 == 0o600
    assert_no_secret_in_any_argv(lab)
    for node in nodes_of(lab):
        _, mode = node.run("stat -c %a /etc/ironserve/default /etc/ironserve/default/secrets.env")
        assert mode.split() == ["700", "600"]
        _, logs = node.run(f"docker logs {CONTAINER} 2>&1")
        assert key.read_text().strip() not in logs
        # the fan-out key, its authorized_keys line and the hub token left with the transfer
        _, out = node.run(
            "ls /etc/ironserve/weights/default/fanout_key /etc/ironserve/weights/default/hub-token"
            " 2>&1; grep -c ironserve-weights /root/.ssh/authorized_keys",
            check=False,
        )
        assert out.count("No such file") == 2 and out.split()[-1] == "0", out


def assert_no_secret_in_any_argv(lab: Path) -> None:
    """`ps -eo args` on every node (what any local user sees) holds neither the API key nor
    the hub token, while serving."""
    secrets = [api_key(lab), (lab / "hub-token").read_text().strip()]
    for node in nodes_of(lab):
        _, args = node.run("ps -eo args")
        # the engine's processes are there: SGLang's ranks and vLLM's serve, or Ray's raylets
        assert "--served-model-name" in args or "raylet" in args, args[-2000:]
        assert not [s for s in secrets if s in args], f"{node.name}: a secret is in ps"


def test_a_second_run_changes_nothing_and_restarts_nothing(lab: Path) -> None:
    nodes = nodes_of(lab)
    before = containers(nodes)
    code, out, took = pyinfra(lab, "deploys/site.py", *FAST)
    assert code == 0, out[-4000:]
    assert changed(out) in ("-", "0"), out[-4000:]
    assert containers(nodes) == before
    assert all(rows and rows[0][3] == "0" for rows in before.values()), before
    _print(f"site.py again: 0 changes in {took:.1f}s")


def test_a_changed_flag_reruns_only_the_serve_command(lab: Path) -> None:
    nodes = nodes_of(lab)
    before = containers(nodes)
    code, out, _ = pyinfra(lab, "deploys/serve.py", *FAST, "--data", "model_max_len=4096")
    assert code == 0, out[-4000:]
    assert "Start the serve command in the Ray head" in out
    assert "engine container" not in out.split("--> Results:")[0]
    assert containers(nodes) == before  # no Ray container was touched
    _, cmdline = nodes[0].run(SERVE_CMDLINE)
    assert "--max-model-len 4096" in cmdline
    code, out, _ = pyinfra(lab, "deploys/serve.py", *FAST)  # back to the inventory's value
    assert code == 0, out[-4000:]
    _, cmdline = nodes[0].run(SERVE_CMDLINE)
    assert "--max-model-len 8192" in cmdline
    assert complete(lab).strip()


def test_a_served_lab_is_ok_in_every_tier(lab: Path) -> None:
    code, report, took = health(lab)  # the default tier: node + cluster + serving
    _print(f"health (default tier, 3 nodes) {took:.1f}s: {report['summary']}")
    assert (code, not_ok(report)) == (0, set())
    checks = {r["check"] for r in report["results"]}
    assert {
        "cluster.engine_containers",
        "cluster.ray_nodes",
        "cluster.weights",
        "serving.health",
        "serving.models",
        "serving.completion",
        "serving.metrics",
    } <= checks
    assert any(c.startswith("nvidia.") for c in checks)  # the node tier ran alongside
    names = [n.name for n in nodes_of(lab)]
    for check in ("cluster.engine_containers", "cluster.ray_nodes", "cluster.weights"):
        assert sorted(r["node"] for r in report["results"] if r["check"] == check) == names
    metrics = next(r for r in report["results"] if r["check"] == "serving.metrics")
    assert "vllm:kv_cache_usage_perc" in metrics["observed"]  # the stand-in speaks vLLM 0.11
    for tier in ("cluster", "serving"):
        code, report, took = health(lab, "--tier", tier)
        _print(f"health --tier {tier} {took:.1f}s")
        assert code == 0 and {r["tier"] for r in report["results"]} == {tier}


def test_a_stopped_worker_container_fails_exactly_that_node(lab: Path) -> None:
    worker = nodes_of(lab)[2]
    worker.run(f"docker stop {CONTAINER}")
    try:
        code, report, _ = health(lab)
        assert code == 2
        failing = not_ok(report)
        assert (worker.name, "cluster.engine_containers", "FAIL", "engine-container") in failing
        # Ray may not have noticed yet; whatever else fails is that node's Ray membership.
        assert failing <= {
            (worker.name, "cluster.engine_containers", "FAIL", "engine-container"),
            (worker.name, "cluster.ray_nodes", "FAIL", "ray-nodes"),
        }, failing
        deadline = time.monotonic() + RAY_NOTICE_S
        while (worker.name, "cluster.ray_nodes", "FAIL", "ray-nodes") not in failing:
            assert time.monotonic() < deadline, f"Ray still lists {worker.name}: {failing}"
            time.sleep(5)
            code, report, _ = health(lab, "--tier", "cluster")
            failing = not_ok(report)
        ray = next(
            r
            for r in report["results"]
            if (r["node"], r["check"]) == (worker.name, "cluster.ray_nodes")
        )
        assert "2/3 nodes" in ray["observed"] and "not in the Ray cluster" in ray["observed"]
        # The lab engine answers from the head alone: the endpoint stays up (see the docstring).
        code, report, _ = health(lab, "--tier", "serving")
        assert (code, not_ok(report)) == (0, set())
    finally:
        _pyinfra(lab, "deploys/restart.py")
    code, report, _ = health(lab)
    assert (code, not_ok(report)) == (0, set())


def test_a_stopped_head_container_takes_the_endpoint_down(lab: Path) -> None:
    head = nodes_of(lab)[0]
    head.run(f"docker stop {CONTAINER}")
    try:
        code, report, _ = health(lab)
        assert code == 2
        assert not_ok(report) == {
            (head.name, "cluster.engine_containers", "FAIL", "engine-container"),
            (head.name, "cluster.ray_nodes", "UNKNOWN", "ray-nodes"),
            (head.name, "serving.health", "FAIL", "endpoint-down"),
            (head.name, "serving.models", "FAIL", "endpoint-down"),
            (head.name, "serving.completion", "FAIL", "endpoint-down"),
            (head.name, "serving.metrics", "UNKNOWN", "endpoint-down"),
        }
    finally:
        _pyinfra(lab, "deploys/restart.py")
    code, report, _ = health(lab)
    assert (code, not_ok(report)) == (0, set())


def test_a_changed_shard_fails_the_weights_of_exactly_that_node(lab: Path) -> None:
    """A flipped byte (as tests/lab/test_runbooks.py corrupts a shard) gives the file a new mtime:
    the cheap check FAILs it; the original copied back with its mtime is OK again."""
    node = nodes_of(lab)[1]
    _, report, _ = health(lab, "--tier", "cluster")
    row = next(
        r for r in report["results"] if (r["node"], r["check"]) == (node.name, "cluster.weights")
    )
    path = row["expected"].split(":")[0]
    shard = f"f=$(ls {path}/*.safetensors | head -1) && "
    node.run(
        shard + 'cp -p "$f" /tmp/shard.orig && '
        'printf X | dd of="$f" bs=1 seek=64 conv=notrunc status=none'
    )
    try:
        code, report, _ = health(lab, "--tier", "cluster")
        assert (code, not_ok(report)) == (
            2,
            {(node.name, "cluster.weights", "FAIL", "weights-corrupt")},
        )
    finally:
        node.run(shard + 'cp -p /tmp/shard.orig "$f" && rm /tmp/shard.orig')
    code, report, _ = health(lab, "--tier", "cluster")
    assert (code, not_ok(report)) == (0, set())


def test_stop_leaves_nothing_running_then_a_node_down_fails_the_ray_wait_naming_it(
    lab: Path,
) -> None:
    nodes = nodes_of(lab)
    code, out, _ = pyinfra(lab, "deploys/stop.py")
    assert code == 0, out[-3000:]
    for node in nodes:
        _, running = node.run("docker ps -aq")
        assert running.strip() == "", (node.name, running)
    code, out, _ = pyinfra(lab, "deploys/stop.py")
    assert code == 0 and changed(out) in ("-", "0"), out[-3000:]

    worker = nodes[2]
    cluster.fault(worker.name, "node-down", directory=lab)
    try:
        timeout = 20
        code, out, took = pyinfra(
            lab, "deploys/serve.py", *FAST, "--data", f"serve_ray_timeout={timeout}"
        )
        assert code != 0
        address = worker.node.address
        assert f"Missing: {worker.name} ({address}): not in the Ray cluster" in out, out[-4000:]
        assert "its SSH connection failed in this run" in out
        # Connect (~10 s SSH timeout for the down node) + facts + containers + the wait.
        assert took < timeout + 90, took
        _print(f"node down: the Ray wait failed naming {worker.name} in {took:.1f}s")
    finally:
        cluster.heal(worker.name, directory=lab)
    code, out, _ = pyinfra(lab, "deploys/serve.py", *FAST)
    assert code == 0, out[-4000:]
    assert complete(lab).strip()


def test_a_stopped_group_is_not_deployed(lab: Path) -> None:
    """Runs after the other Ray tests: it removes the serving group's containers."""
    _pyinfra(lab, "deploys/stop.py")
    head = nodes_of(lab)[0]
    for tier in ([], ["--tier", "serving"], ["--tier", "cluster"]):
        code, report, _ = health(lab, *tier)
        assert code == 1, tier
        assert not_ok(report) == {(head.name, "cluster.deployed", "WARN", "first-deploy")}
        assert not [r for r in report["results"] if r["tier"] == "serving"]


def test_sglang_gets_its_key_but_no_process_argv_holds_it(lab: Path) -> None:
    """Runs after the Ray group is stopped: the same nodes serve SGLang (the lab's stand-in
    behind `python3 -m sglang.launch_server`, 3 ranks). SGLang takes its key only as an option;
    the deploy's own check proves it enforced (a completion with the key, 401 without), and no
    process on any node shows the key in its argv."""
    registry = st.load(lab).services["registry"].address  # type: ignore[union-attr]
    sglang = [
        *("--data", "engine_kind=sglang", "--data", f"engine_version={SGLANG_VERSION}"),
        *("--data", f"engine_image={registry}:5000/lmsysorg/sglang:v{SGLANG_VERSION}"),
        *("--data", "engine_extra_args=[]", "--data", "model_max_len=4096"),
    ]
    code, out, took = pyinfra(lab, "deploys/serve.py", *FAST, *sglang)
    try:
        assert code == 0, out[-6000:]
        assert "Prove a chat completion with the API key" in out
        _print(f"SGLang serve.py {took:.1f}s")
        head = nodes_of(lab)[0]
        _, args = head.run("ps -eo args")
        assert "sglang.launch_server" in args and "--served-model-name" in args, args[-2000:]
        assert_no_secret_in_any_argv(lab)
    finally:
        code, out, _ = pyinfra(lab, "deploys/stop.py", *sglang)
        assert code == 0, out[-3000:]
