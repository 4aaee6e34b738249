"""A Dynamo group on @fake hosts (deploys/serve.py, restart.py, stop.py), from the example
inventories: every image of the group (the Dynamo runtime, etcd, NATS) pinned by digest before
any operation and pulled where missing; the control plane, the frontend and the workers started
in three waves on every node of the group; the readiness wait and the completion on the
frontend's node; a converged group adds no operation; a changed worker flag replaces only that
worker; a new control plane restarts the frontend and the workers; restart and stop reach every
container of the group; the gateway and Open WebUI are set up in front of the frontend."""

from __future__ import annotations

import json
import re
import runpy
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.roles.engine import deploy_engine, deploy_engine_restart, deploy_engine_stop
from ironserve.roles.engine.decide import GroupServe, decide, dynamo_actions
from ironserve.roles.gateway.deploy import deploy_gateway
from ironserve.roles.webui.deploy import deploy_webui
from tests.deploys.conftest import FakeRun
from tests.deploys.test_serve import commands, op_names
from tests.serving.fake_registry import Registry, serve

ROOT = Path(__file__).resolve().parents[2]
DISAGG = "h100x8_2node_qwen3_32b_vllm_dynamo_kv"
AGG = "h100x8_llama3_70b_vllm_dynamo_agg"
DEP16 = "h200x8_4node_r1_vllm_dynamo_dep16"
RUNTIME, ETCD, NATS = "ai-dynamo/vllm-runtime", "coreos/etcd", "library/nats"
IMAGE = re.compile(r"^docker image inspect")
SETUP = ["Engine state folder (0700)", "Engine env file with the API key (0600)"]
PULL = "Pull the engine image by digest (every node in parallel)"
PLANE = "Start the Dynamo control plane (etcd, NATS)"
FRONTEND = "Start the Dynamo frontend"
WORKERS = "Start the Dynamo workers"
READY = "Wait until the engine answers /health (progress-aware)"
PROVE = "Prove a chat completion with the API key (refused without)"


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    registry = Registry()
    with serve(registry) as running:
        # Distinct bodies: distinct digests, so each image is pinned as its own.
        running.push(RUNTIME, "1.6.1", payload="dynamo")
        running.push(ETCD, "v3.5.16", payload="etcd")
        running.push(NATS, "2.10.27", payload="nats")
        yield running


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("fake-key-0123456789\n")
    path.chmod(0o600)
    return path


def example(
    name: str, reg: Registry, key_file: Path, **extra: Any
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """The example inventory's nodes (as @fake hosts) and group data, its images at the
    loopback registry."""
    nodes = runpy.run_path(str(ROOT / "inventories" / f"{name}.py"))["gpu_nodes"]
    group = runpy.run_path(str(ROOT / "inventories" / "group_data" / f"{name}.py"))
    at = reg.url.removeprefix("http://")
    data = {k: v for k, v in group.items() if not k.startswith("_")} | {
        "engine_image": f"{at}/{RUNTIME}:1.6.1",
        "dynamo_etcd_image": f"{at}/{ETCD}:v3.5.16",
        "dynamo_nats_image": f"{at}/{NATS}:2.10.27",
        "serving_api_key_file": str(key_file),
        "fake_delay": 0,
        "fake_delay_jitter": 0,
    }
    hosts = [(f"@fake/{n}", dict(d)) for n, d in nodes]
    return hosts, data | extra


def fake(
    hosts: list[tuple[str, dict[str, Any]]],
    data: dict[str, Any],
    responses: dict[str, dict[Any, Any]] | None = None,
    deploy: Callable[[], None] = deploy_engine,
) -> FakeRun:
    run = FakeRun(
        [(n, d | {"fake_responses": (responses or {}).get(n, {})}) for n, d in hosts], data
    )
    run.prepare_as_cli(deploy)
    return run


def inspect_of(name: str) -> re.Pattern[str]:
    return re.compile(rf"docker inspect --type container .* {re.escape(name)} 2>")


def converged(group: GroupServe, stopped: tuple[str, ...] = ()) -> dict[str, dict[Any, Any]]:
    """fake_responses of nodes running exactly what ``group`` decided, every image present,
    the state folder there (``stopped``: containers that exist but do not run)."""
    out: dict[str, dict[Any, Any]] = {}
    for n in group.nodes:
        responses: dict[Any, Any] = {f"/etc/ironserve/{group.name}": "x"}
        for c in n.containers:
            running = c.name not in stopped
            doc = {
                "Labels": {"ironserve.spec": c.digest, "ironserve.group": group.name},
                "State": {"Running": running, "Status": "running" if running else "exited"},
                "RestartCount": 0,
                "Image": "sha256:" + "1" * 64,
            }
            responses[inspect_of(c.name)] = ["@@inspect", json.dumps(doc)]
        responses[IMAGE] = "sha256:" + "1" * 64
        out[n.name] = responses
    return out


def container_ops(run: FakeRun, name: str) -> list[str]:
    return [op for op in op_names(run, name) if op not in SETUP]


def wave_order(run: FakeRun) -> list[str]:
    order = [", ".join(run.state.get_op_meta(h).names) for h in run.state.get_op_order()]
    wanted = {f"Engine | {op}" for op in (PULL, PLANE, FRONTEND, WORKERS, READY, PROVE)}
    return [op.removeprefix("Engine | ") for op in order if op in wanted]


def test_disaggregated_example_control_plane_then_frontend_then_workers_on_every_node(
    reg: Registry, key_file: Path
) -> None:
    hosts, data = example(DISAGG, reg, key_file)
    run = fake(hosts, data)
    group = decide(run.state)["default"]
    at = reg.url.removeprefix("http://")
    pins = {
        f"{at}/{RUNTIME}@{reg.push(RUNTIME, '1.6.1', payload='dynamo')}",
        f"{at}/{ETCD}@{reg.push(ETCD, 'v3.5.16', payload='etcd')}",
        f"{at}/{NATS}@{reg.push(NATS, '2.10.27', payload='nats')}",
    }
    head, decode = "@fake/h100-prefill", "@fake/h100-decode"
    assert op_names(run, head) == [*SETUP, PULL, PLANE, FRONTEND, WORKERS, READY, PROVE]
    # The decode node takes part in every wave (skipped where it has nothing), so the waves stay
    # in order across nodes; it pulls only the runtime image.
    assert op_names(run, decode) == [*SETUP, PULL, PLANE, FRONTEND, WORKERS]
    assert wave_order(run) == [PULL, PLANE, FRONTEND, WORKERS, READY, PROVE]
    ops = dict(commands(run, head))
    assert {c.removeprefix("docker pull -q ") for c in ops[PULL]} == pins
    etcd, nats = ops[PLANE]
    assert etcd.startswith(
        "docker run -d --name ironserve-default-etcd --label ironserve.group=default "
        "--label ironserve.role=head --label ironserve.rank=0 --label ironserve.spec="
    )
    assert f" {at}/{ETCD}@sha256:" in etcd and f" {at}/{NATS}@sha256:" in nats
    (frontend,) = ops[FRONTEND]
    assert "python3 -m dynamo.frontend --http-host 127.0.0.1 --http-port 18000" in frontend
    assert [c.split()[4] for c in ops[WORKERS]] == [
        f"ironserve-default-prefill-{i}" for i in range(4)
    ]
    decode_ops = dict(commands(run, decode))
    assert decode_ops[PULL] == [f"docker pull -q {group.image}"]
    assert decode_ops[PLANE] == decode_ops[FRONTEND] == ["true"]  # skipped (_if) on this node
    assert [c.split()[4] for c in decode_ops[WORKERS]] == [
        f"ironserve-default-decode-{i}" for i in range(4)
    ]
    assert all("--disaggregation-mode decode" in c for c in decode_ops[WORKERS])
    # Each container's label is its own spec hash; the key is in no command.
    digests = [c.digest for n in group.nodes for c in n.containers]
    assert len(set(digests)) == len(digests) == 11
    for name, _ in hosts:
        assert not any("fake-key" in c for _, cmds in commands(run, name) for c in cmds)


def test_aggregated_example_one_node_runs_every_wave(reg: Registry, key_file: Path) -> None:
    hosts, data = example(AGG, reg, key_file)
    run = fake(hosts, data)
    ((name, _),) = hosts
    assert op_names(run, name) == [*SETUP, PULL, PLANE, FRONTEND, WORKERS, READY, PROVE]
    ops = dict(commands(run, name))
    assert [c.split()[4] for c in ops[PLANE]] == [
        "ironserve-default-etcd",
        "ironserve-default-nats",
    ]
    assert [c.split()[4] for c in ops[WORKERS]] == [
        "ironserve-default-worker-0",
        "ironserve-default-worker-1",
    ]
    assert all("--disaggregation-mode" not in c for c in ops[WORKERS])


def test_workers_over_two_nodes_start_one_container_on_each_of_their_nodes(
    reg: Registry, key_file: Path
) -> None:
    """The DEP16 recipe: a prefill and a decode worker, each over two nodes; every node starts
    its share of its worker (its DP ranks) in the workers' wave."""
    hosts, data = example(DEP16, reg, key_file)
    run = fake(hosts, data)
    for name, _ in hosts:
        pool = "prefill" if "prefill" in name else "decode"
        start = "0" if name.endswith("-0") else "8"
        (worker,) = dict(commands(run, name))[WORKERS]
        assert worker.split()[4] == f"ironserve-default-{pool}-0"
        assert f"--data-parallel-start-rank {start} " in worker
        assert f"--disaggregation-mode {pool}" in worker
    assert wave_order(run) == [PULL, PLANE, FRONTEND, WORKERS, READY, PROVE]


@pytest.mark.parametrize("inventory", [DISAGG, AGG, DEP16])
def test_a_converged_dynamo_group_adds_no_operation(
    inventory: str, reg: Registry, key_file: Path
) -> None:
    hosts, data = example(inventory, reg, key_file)
    facts = converged(decide(fake(hosts, data).state)["default"])
    second = fake(hosts, data, facts)
    group = decide(second.state)["default"]
    assert {c.action for n in group.nodes for c in n.containers} == {"keep"}
    assert not group.check
    for name, _ in hosts:
        assert container_ops(second, name) == []


def test_a_changed_worker_flag_replaces_only_that_worker(reg: Registry, key_file: Path) -> None:
    hosts, data = example(DISAGG, reg, key_file)
    facts = converged(decide(fake(hosts, data).state)["default"])
    # The decode node's interface changes: its workers' env changes, nothing else's.
    hosts[1][1]["network_socket_ifname"] = "ens11f0"
    second = fake(hosts, data, facts)
    group = decide(second.state)["default"]
    changed = {c.name + "@" + n.name: c.action for n in group.nodes for c in n.containers}
    assert {k for k, a in changed.items() if a != "keep"} == {
        f"ironserve-default-decode-{i}@@fake/h100-decode" for i in range(4)
    }
    assert set(changed.values()) == {"keep", "replace"}
    decode = dict(commands(second, "@fake/h100-decode"))
    assert decode[WORKERS][0] == "docker rm -f ironserve-default-decode-0"
    assert "-e GLOO_SOCKET_IFNAME=ens11f0" in decode[WORKERS][1]
    assert PLANE not in decode and FRONTEND not in decode  # no change there: no such wave
    head = dict(commands(second, "@fake/h100-prefill"))
    assert head[WORKERS] == ["true"]  # the wave is there, skipped: the prefill workers stay
    assert PLANE not in head and FRONTEND not in head
    assert READY in head and PROVE in head


def test_one_worker_flag_and_a_stopped_worker(reg: Registry, key_file: Path) -> None:
    hosts, data = example(AGG, reg, key_file)
    first = decide(fake(hosts, data).state)["default"]
    facts = converged(first, stopped=("ironserve-default-worker-1",))
    group = decide(fake(hosts, data, facts).state)["default"]
    assert [c.action for c in group.nodes[0].containers] == [
        "keep",
        "keep",
        "keep",
        "keep",
        "start",
    ]


def test_a_new_control_plane_restarts_the_frontend_and_every_worker() -> None:
    waves = {"etcd": "control plane", "nats": "control plane", "fe": "frontend", "w0": "workers"}
    keep = dict.fromkeys(waves, "keep")
    assert dynamo_actions(keep, waves) == keep
    assert dynamo_actions(keep | {"w0": "replace"}, waves) == keep | {"w0": "replace"}
    assert dynamo_actions(keep | {"nats": "start"}, waves) == {
        "etcd": "keep",
        "nats": "start",
        "fe": "restart",
        "w0": "restart",
    }
    assert set(dynamo_actions(keep, waves, restart=True).values()) == {"restart"}
    unreachable = keep | {"w0": "unreachable"}
    assert dynamo_actions(unreachable, waves, restart=True)["w0"] == "unreachable"


def test_restart_restarts_every_container_in_waves(reg: Registry, key_file: Path) -> None:
    hosts, data = example(DISAGG, reg, key_file)
    facts = converged(decide(fake(hosts, data).state)["default"])
    run = fake(hosts, data, facts, deploy_engine_restart)
    head = dict(commands(run, "@fake/h100-prefill"))
    assert head[f"Engine restart | {PLANE}"] == [
        "docker restart ironserve-default-etcd",
        "docker restart ironserve-default-nats",
    ]
    assert head[f"Engine restart | {FRONTEND}"] == ["docker restart ironserve-default-frontend"]
    decode = dict(commands(run, "@fake/h100-decode"))
    assert decode[f"Engine restart | {WORKERS}"] == [
        f"docker restart ironserve-default-decode-{i}" for i in range(4)
    ]
    order = [", ".join(run.state.get_op_meta(h).names) for h in run.state.get_op_order()]
    wanted = [f"Engine restart | {op}" for op in (PLANE, FRONTEND, WORKERS, READY, PROVE)]
    assert [op for op in order if op in wanted] == wanted


def test_stop_asks_for_every_container_of_the_group_by_label_and_name(
    reg: Registry, key_file: Path
) -> None:
    hosts, data = example(DISAGG, reg, key_file)
    listing = re.compile(r"docker ps -a --filter")
    responses = {
        "@fake/h100-prefill": {listing: ["ironserve-default-etcd", "ironserve-default-frontend"]},
        "@fake/h100-decode": {listing: []},
    }
    run = fake(hosts, data, responses, deploy_engine_stop)
    assert dict(commands(run, "@fake/h100-prefill"))[
        "Engine stop | Remove the serving group's containers"
    ] == ["docker rm -f ironserve-default-etcd ironserve-default-frontend"]
    assert commands(run, "@fake/h100-decode") == []
    asked = " ".join(run.state.inventory.get_host("@fake/h100-decode").connector.executed_commands)
    assert "label=ironserve.group=default" in asked
    assert all(f"name=^/?ironserve-default-decode-{i}$" in asked for i in range(4))
    head = " ".join(run.state.inventory.get_host("@fake/h100-prefill").connector.executed_commands)
    for part in ("etcd", "nats", "frontend", "prefill-3", "gateway"):
        assert f"name=^/?ironserve-default-{part}$" in head


def test_the_gateway_fronts_the_frontend_on_the_head(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    hosts, data = example(DISAGG, reg, key_file)
    reg.push("library/nginx", "1.27.3-alpine", payload="nginx")
    at = reg.url.removeprefix("http://")
    run = fake(
        hosts, data | {"gateway_image": f"{at}/library/nginx:1.27.3-alpine"}, None, deploy_gateway
    )
    head = op_names(run, "@fake/h100-prefill")
    assert "Gateway | Gateway configuration with the API key (0600)" in head
    assert "Gateway | Start the API gateway" in head
    assert not any("Start" in op for op in op_names(run, "@fake/h100-decode"))
    group = decide(run.state)["default"]
    assert group.plan.gateway is not None
    assert group.plan.gateway.upstream == "127.0.0.1:18000"
    assert group.api_container == "ironserve-default-frontend"


def test_open_webui_runs_on_the_frontends_node(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    password = tmp_path / "webui-password"
    password.write_text("s3cret-admin\n")
    password.chmod(0o600)
    reg.push("open-webui/open-webui", "v0.6.5", payload="webui")
    at = reg.url.removeprefix("http://")
    hosts, data = example(DISAGG, reg, key_file)
    data |= {
        "webui_enabled": True,
        "webui_admin_password_file": str(password),
        "webui_image": f"{at}/open-webui/open-webui:v0.6.5",
    }
    run = fake(hosts, data, None, deploy_webui)
    assert "Open WebUI | Start Open WebUI" in op_names(run, "@fake/h100-prefill")
    assert op_names(run, "@fake/h100-decode") == []


def test_workers_the_plan_no_longer_has_are_removed_before_any_start(
    reg: Registry, key_file: Path
) -> None:
    hosts, data = example(DISAGG, reg, key_file)
    facts = converged(decide(fake(hosts, data).state)["default"])
    listing = re.compile(r"docker ps -a --filter")
    facts["@fake/h100-decode"][listing] = [f"ironserve-default-decode-{i}" for i in range(4)]
    facts["@fake/h100-prefill"][listing] = [
        "ironserve-default-frontend",
        "ironserve-default-gateway",
    ]
    # The decode pool now runs two workers per node: decode-2 and decode-3 are not planned.
    fewer = data | {"dynamo_decode": {"tensor_parallel_size": 2, "workers_per_node": 2}}
    run = fake(hosts, fewer, facts)
    group = decide(run.state)["default"]
    assert group.node("@fake/h100-decode").stale == [
        "ironserve-default-decode-2",
        "ironserve-default-decode-3",
    ]
    assert group.node("@fake/h100-prefill").stale == []  # the gateway is the gateway role's
    remove = "Remove the group's containers the Plan no longer has"
    decode = dict(commands(run, "@fake/h100-decode"))
    assert decode[remove] == ["docker rm -f ironserve-default-decode-2 ironserve-default-decode-3"]
    assert container_ops(run, "@fake/h100-decode") == [remove]
    assert container_ops(run, "@fake/h100-prefill") == [remove, READY, PROVE]
    assert dict(commands(run, "@fake/h100-prefill"))[remove] == ["true"]  # skipped there


DEP32 = "gb200x4_9node_r1_fp4_trtllm_dynamo_wideep_dep32"
TRTLLM_RUNTIME = "ai-dynamo/tensorrtllm-runtime"


def test_trtllm_decode_over_8_trays_mpirun_on_the_first_sshd_on_the_others_keys_0600(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    reg.push(TRTLLM_RUNTIME, "1.6.1", payload="dynamo-trtllm")
    at = reg.url.removeprefix("http://")
    hosts, data = example(
        DEP32,
        reg,
        key_file,
        engine_image=f"{at}/{TRTLLM_RUNTIME}:1.6.1",
        serve_api_key_dir=str(tmp_path / "generated-keys"),
    )
    run = fake(hosts, data)
    group = decide(run.state)["default"]
    keys_file = Path(group.plan.mpi_keys or "")
    assert keys_file.parent == tmp_path / "generated-keys"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    keys = json.loads(keys_file.read_text())
    first, *others = [f"@fake/gb200-decode-{i}" for i in range(8)]

    def started(name: str) -> str:
        (cmds,) = [c for op, c in commands(run, name) if op == WORKERS]
        return " ".join(cmds)

    leader = started(first)
    assert "mpirun " in leader and "-np 32" in leader
    assert "trtllm-llmapi-launch python3 -m dynamo.trtllm" in leader
    assert "/usr/sbin/sshd" not in leader
    for name in others:
        member = started(name)
        assert "/usr/sbin/sshd" in member and "mpirun" not in member
        assert "dynamo.trtllm" not in member
    prefill = started("@fake/gb200-prefill-0")
    assert "mpirun" not in prefill and "python3 -m dynamo.trtllm" in prefill
    # Each tray of the world gets its side of the keys, 0600, over stdin: never on a command
    # line; the prefill tray, in no MPI world, none.
    for name in (first, *others):
        ops = commands(run, name)
        assert dict(ops)["MPI SSH folder of a TensorRT-LLM group (0700)"]
        written = [c for op, cmds in ops if op == "MPI SSH key file (0600)" for c in cmds]
        assert len(written) == 2 and all("umask 077" in c for c in written)
        lines = " ".join(" ".join(c) for _, c in ops)
        assert "PRIVATE KEY" not in lines and keys["client_public"] not in lines
    assert "MPI SSH folder of a TensorRT-LLM group (0700)" not in op_names(
        run, "@fake/gb200-prefill-0"
    )
    files = group.mpi_files
    assert [p.rsplit("/", 1)[1] for p, _ in files[first]] == ["id_ed25519", "known_hosts"]
    for name in others:
        assert [p.rsplit("/", 1)[1] for p, _ in files[name]] == [
            "ssh_host_ed25519_key",
            "authorized_keys",
        ]
    known = dict(files[first])["/etc/ironserve/default/mpi/known_hosts"]
    assert known == "".join(f"[10.60.3.{22 + i}]:2233 {keys['host_public']}\n" for i in range(7))
    assert keys["client"] not in str(group)
