"""roles/engine (deploys/serve.py, stop.py, restart.py) on @fake hosts: the image resolved to a
digest from a loopback registry before any operation, the operations and their order per node,
and -- from the facts of a converged node -- that a second run has no operation at all, that a
changed serve flag re-runs only the serve command, a changed worker replaces only that worker,
and an image missing from the registry stops the run before any operation exists."""

from __future__ import annotations

import json
import re
import shlex
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.command import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.api.exceptions import DeployError
from pyinfra.context import ctx_host, ctx_state

from ironserve.roles.engine import deploy_engine, deploy_engine_restart, deploy_engine_stop
from ironserve.roles.engine.decide import GroupServe, decide
from tests.deploys.conftest import FakeRun
from tests.serving.fake_registry import Registry, serve

VLLM = "vllm/vllm-openai"
MINDIE = "ei-mindie/mindie:2.0.T3-800I-A2-py311-openeuler24.03-lts"
INSPECT = re.compile(r"docker inspect --type container")
IMAGE = re.compile(r"^docker image inspect")
NAMES = ["@fake/n1", "@fake/n2", "@fake/n3"]


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    registry = Registry()
    with serve(registry) as running:
        running.push(VLLM, "v0.11.0")
        running.push(VLLM, "v0.33.0")
        running.push("lmsysorg/sglang", "v0.5.4")
        running.push(*MINDIE.split(":"))
        running.push("ai_deliver/vllm_vacc", "AI3.2_GR_1202")
        running.push("nvidia/tensorrt-llm/release", "1.2.1")
        yield running


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("fake-key-0123456789\n")
    path.chmod(0o600)
    return path


def registry_host(reg: Registry) -> str:
    return reg.url.removeprefix("http://")


def vllm_group(
    reg: Registry, key_file: Path | None, tmp_path: Path, **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model_id": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        "model_served_name": "DeepSeek-R1-Distill-Llama-8B",
        "model_max_len": 8192,
        "engine_kind": "vllm",
        "engine_version": "0.11.0",  # before vLLM's native multi-node launch: Ray
        "engine_image": f"{registry_host(reg)}/{VLLM}:v0.11.0",
        "accelerator_kind": "l40s-48g",
        "accelerator_count": 2,
        "network_socket_ifname": "eth0",
        "serve_api_key_dir": str(tmp_path / "generated-keys"),
        "fake_delay": 0,
        "fake_delay_jitter": 0,
    }
    if key_file is not None:
        data["serving_api_key_file"] = str(key_file)
    return data | extra


def fake(
    hosts: list[tuple[str, dict[str, Any]]],
    group_data: dict[str, Any],
    responses: dict[str, dict[Any, Any]] | None = None,
    deploy: Callable[[], None] = deploy_engine,
) -> FakeRun:
    for name, data in hosts:
        data.setdefault("fake_responses", (responses or {}).get(name, {}))
    run = FakeRun(hosts, group_data)
    run.prepare_as_cli(deploy)
    return run


def three_nodes(**per_node: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            name,
            {"node_role": "head" if i == 0 else "worker", "node_ip": f"10.9.0.{i + 1}"}
            | per_node.get(name.split("/")[-1], {}),
        )
        for i, name in enumerate(NAMES)
    ]


def commands(run: FakeRun, name: str) -> list[tuple[str, list[str]]]:
    """(operation name, its commands) for each operation of ``name``, without executing."""
    host = run.state.inventory.get_host(name)
    found = []
    for op_hash in run.state.get_op_order():
        data = run.state.ops.get(host, {}).get(op_hash)
        if data is None:
            continue
        label = ", ".join(sorted(run.state.get_op_meta(op_hash).names))
        with ctx_state.use(run.state), ctx_host.use(host):
            cmds: list[str] = []
            for cmd in data.command_generator():
                if isinstance(cmd, StringCommand):
                    cmds.append(cmd.get_raw_value())
                elif isinstance(cmd, FileUploadCommand):
                    cmds.append(f"upload {cmd.dest}")
                elif isinstance(cmd, FunctionCommand):
                    cmds.append("python")
        found.append((label.removeprefix("Engine | "), cmds))
    return found


def op_names(run: FakeRun, name: str) -> list[str]:
    return [label for label, _ in commands(run, name)]


def converged(
    group: GroupServe,
    *,
    serve_spec: str | None = None,
    ray: str | None = None,
    running: dict[str, bool] | None = None,
) -> dict[str, dict[Any, Any]]:
    """fake_responses of nodes running exactly what ``group`` decided (a converged group)."""
    out: dict[str, dict[Any, Any]] = {}
    for n in group.nodes:
        is_running = (running or {}).get(n.name, True)
        inspect = {
            "Labels": {"ironserve.spec": n.digest, "ironserve.group": group.name},
            "State": {"Running": is_running, "Status": "running" if is_running else "exited"},
            "RestartCount": 0,
            "Image": "sha256:" + "1" * 64,
        }
        lines = ["@@inspect", json.dumps(inspect)]
        if n.launch.serve_exec is not None:
            from ironserve.serving.spec import serve_hash

            lines += ["@@serve", serve_spec or str(serve_hash(n.launch))]
            lines += ["@@ray", ray or RAY_3X2]
        out[n.name] = {INSPECT: lines, IMAGE: "sha256:" + "1" * 64}
    return out


RAY_3X2 = """Node status
---------------------------------------------------------------
Active:
 1 node_a
 1 node_b
 1 node_c
Pending:
 (no pending nodes)

Resources
---------------------------------------------------------------
Total Usage:
 6.0/6.0 GPU (6.0 used of 6.0 reserved in placement groups)
"""


def test_fresh_ray_group_head_then_workers_then_ray_wait_serve_ready_completion(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    run = fake(three_nodes(), vllm_group(reg, key_file, tmp_path))
    group = decide(run.state)["default"]
    digest = reg.push(VLLM, "v0.11.0")  # same body: the same digest
    assert group.image == f"{registry_host(reg)}/{VLLM}@{digest}"
    head = commands(run, NAMES[0])
    assert [label for label, _ in head] == [
        "Engine state folder (0700)",
        "Engine env file with the API key (0600)",
        "Pull the engine image by digest (every node in parallel)",
        "Start the head's engine container",
        "Wait until Ray shows every planned node and GPU",
        "Start the serve command in the Ray head",
        "Wait until the engine answers /health (progress-aware)",
        "Prove a chat completion with the API key (refused without)",
    ]
    ops = dict(head)
    assert ops["Pull the engine image by digest (every node in parallel)"] == [
        f"docker pull -q {group.image}"
    ]
    (run_head,) = ops["Start the head's engine container"]
    assert run_head.startswith(
        "docker run -d --name ironserve-default-ray --label ironserve.group=default "
        "--label ironserve.role=head --label ironserve.rank=0 --label ironserve.spec="
    )
    # The Plan's run arguments follow, then the pinned image and `ray start --head`.
    plan_line = group.nodes[0].launch.shell_lines()[0]
    assert run_head.replace(f" {group.image} ", f" {registry_host(reg)}/{VLLM}:v0.11.0 ") == (
        plan_line.replace(
            "docker run -d --name ironserve-default-ray", run_head.split(" --restart")[0]
        )
    )
    assert "--restart unless-stopped --network host --ipc host" in run_head
    assert "--env-file /etc/ironserve/default/secrets.env" in run_head
    assert "start --block --head --node-ip-address 10.9.0.1 --port 6379 --num-gpus 2" in run_head
    stop, start = ops["Start the serve command in the Ray head"]
    assert "kill" in stop and start.startswith("docker exec -d ironserve-default-ray sh -c")
    assert (
        "vllm serve /data/models/deepseek-ai/DeepSeek-R1-Distill-Llama-8B --served-model-name "
        "DeepSeek-R1-Distill-Llama-8B --tensor-parallel-size 2 --pipeline-parallel-size 3 "
        "--distributed-executor-backend ray"
    ) in start
    for name in NAMES[1:]:
        worker = commands(run, name)
        assert [label for label, _ in worker] == [
            "Engine state folder (0700)",
            "Engine env file with the API key (0600)",
            "Pull the engine image by digest (every node in parallel)",
            "Start the workers' engine containers",
        ]
        assert (
            "start --block --address 10.9.0.1:6379"
            in dict(worker)["Start the workers' engine containers"][0]
        )
    # The key never sits in a command.
    for name in NAMES:
        assert not any("fake-key" in c for _, cmds in commands(run, name) for c in cmds)
    assert "fake-key" not in repr(group)
    # Head before workers, in pyinfra's order of operations.
    order = [", ".join(run.state.get_op_meta(h).names) for h in run.state.get_op_order()]
    assert (
        order.index("Engine | Start the head's engine container")
        < order.index("Engine | Start the workers' engine containers")
        < order.index("Engine | Wait until Ray shows every planned node and GPU")
    )


def test_native_group_runs_every_rank_then_waits_on_node0_without_ray(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    data = vllm_group(
        reg,
        key_file,
        tmp_path,
        engine_version="0.33.0",
        engine_image=f"{registry_host(reg)}/{VLLM}:v0.33.0",
        engine_tensor_parallel_size=2,
        engine_pipeline_parallel_size=3,
    )
    run = fake(three_nodes(), data)
    group = decide(run.state)["default"]
    assert not group.ray
    for rank, name in enumerate(NAMES):
        ops = dict(commands(run, name))
        label = (
            "Start the head's engine container"
            if rank == 0
            else ("Start the workers' engine containers")
        )
        (line,) = ops[label]
        assert line.startswith("docker run -d --name ironserve-default-vllm ")
        assert f"--nnodes 3 --node-rank {rank} --master-addr 10.9.0.1 --master-port 29501" in line
        assert line.endswith("--headless") == (rank > 0)
        assert "Wait until Ray shows every planned node and GPU" not in ops
        assert "Start the serve command in the Ray head" not in ops
        assert ("Wait until the engine answers /health (progress-aware)" in ops) == (rank == 0)
    # Converged: no container operation; one rank changed: every rank restarts (they meet at
    # start). (The fake facts do not cover the state folder and env file.)
    facts = converged(group)
    quiet = decide(fake(three_nodes(), data, facts).state)["default"]
    assert [n.action for n in quiet.nodes] == ["keep", "keep", "keep"]
    assert not quiet.serve and not quiet.check
    again = fake(three_nodes(n3={"network_socket_ifname": "ens5"}), data, facts)
    assert [n.action for n in decide(again.state)["default"].nodes] == [
        "restart",
        "restart",
        "replace",
    ]


def test_a_converged_group_gets_no_operation_at_all(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    first = fake(three_nodes(), vllm_group(reg, key_file, tmp_path))
    group = decide(first.state)["default"]
    facts = converged(group)
    facts = {name: {"/etc/ironserve/default": "x", **resp} for name, resp in facts.items()}
    second = fake(three_nodes(), vllm_group(reg, key_file, tmp_path), facts)
    again = decide(second.state)["default"]
    assert [n.action for n in again.nodes] == ["keep", "keep", "keep"]
    assert not again.serve and not again.check
    for name in NAMES:
        assert [
            op for op in op_names(second, name) if "folder" not in op and "env file" not in op
        ] == []


def test_a_changed_serve_flag_reruns_only_the_serve_command(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    first = fake(three_nodes(), vllm_group(reg, key_file, tmp_path))
    facts = converged(decide(first.state)["default"])
    second = fake(three_nodes(), vllm_group(reg, key_file, tmp_path, model_max_len=4096), facts)
    group = decide(second.state)["default"]
    assert [n.action for n in group.nodes] == ["keep", "keep", "keep"]
    head = dict(commands(second, NAMES[0]))
    assert "Start the head's engine container" not in head
    assert "--max-model-len 4096" in head["Start the serve command in the Ray head"][1]
    for name in NAMES[1:]:
        assert not any("container" in op for op in op_names(second, name))


def test_a_changed_worker_replaces_only_that_worker_then_serves_again(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    first = fake(three_nodes(), vllm_group(reg, key_file, tmp_path))
    facts = converged(decide(first.state)["default"])
    nodes = three_nodes(n3={"network_socket_ifname": "ens5"})
    second = fake(nodes, vllm_group(reg, key_file, tmp_path), facts)
    group = decide(second.state)["default"]
    assert [n.action for n in group.nodes] == ["keep", "keep", "replace"]
    worker = dict(commands(second, NAMES[2]))["Start the workers' engine containers"]
    assert worker[0] == "docker rm -f ironserve-default-ray"
    assert "-e GLOO_SOCKET_IFNAME=ens5" in worker[1]
    assert not any("container" in op for op in op_names(second, NAMES[1]))
    assert "Start the serve command in the Ray head" in op_names(second, NAMES[0])


def test_a_stopped_head_starts_and_every_worker_rejoins(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    first = fake(three_nodes(), vllm_group(reg, key_file, tmp_path))
    group = decide(first.state)["default"]
    facts = converged(group, running={NAMES[0]: False})
    second = fake(three_nodes(), vllm_group(reg, key_file, tmp_path), facts)
    assert [n.action for n in decide(second.state)["default"].nodes] == [
        "start",
        "restart",
        "restart",
    ]
    assert dict(commands(second, NAMES[0]))["Start the head's engine container"] == [
        "docker start ironserve-default-ray"
    ]
    assert dict(commands(second, NAMES[1]))["Start the workers' engine containers"] == [
        "docker restart ironserve-default-ray"
    ]


def test_a_ray_cluster_short_of_a_node_is_reformed(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    first = fake(three_nodes(), vllm_group(reg, key_file, tmp_path))
    short = RAY_3X2.replace(" 1 node_c\n", "").replace("6.0/6.0 GPU", "4.0/4.0 GPU")
    facts = converged(decide(first.state)["default"], ray=short)
    second = fake(three_nodes(), vllm_group(reg, key_file, tmp_path), facts)
    group = decide(second.state)["default"]
    assert [n.action for n in group.nodes] == ["keep", "restart", "restart"]
    assert group.serve and group.check


def test_an_image_missing_in_the_registry_stops_before_any_operation(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    data = vllm_group(reg, key_file, tmp_path, engine_image=f"{registry_host(reg)}/{VLLM}:v9.9.9")
    with pytest.raises(DeployError) as caught:
        fake(three_nodes(), data)
    message = str(caught.value)
    assert message.startswith(f"engine_image: image {registry_host(reg)}/{VLLM}:v9.9.9 is not in")
    assert "Nothing was changed on the nodes" in message


def test_without_a_key_file_a_key_is_generated_0600_and_said_where(
    reg: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = fake(three_nodes(), vllm_group(reg, None, tmp_path))
    group = decide(run.state)["default"]
    assert group.key_file.parent == tmp_path / "generated-keys"
    assert stat.S_IMODE(group.key_file.stat().st_mode) == 0o600
    key = group.key_file.read_text().strip()
    assert group.env == f"VLLM_API_KEY={key}\nIRONSERVE_API_KEY={key}\n"
    assert f"generated an API key into {group.key_file}" in caplog.text
    assert key not in caplog.text


def test_a_key_file_readable_by_others_is_refused_naming_host_and_field(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    key_file.chmod(0o644)
    with pytest.raises(DeployError, match=r"@fake/n1: serving_api_key_file: .* readable by others"):
        fake(three_nodes(), vllm_group(reg, key_file, tmp_path))


def test_sglang_every_node_serves_its_rank_and_one_change_restarts_all(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    data = vllm_group(
        reg,
        key_file,
        tmp_path,
        engine_kind="sglang",
        engine_image=f"{registry_host(reg)}/lmsysorg/sglang:v0.5.4",
    )
    hosts = three_nodes()[:2]
    run = fake(hosts, data)
    group = decide(run.state)["default"]
    assert not group.ray
    for rank, name in enumerate(NAMES[:2]):
        ops = dict(commands(run, name))
        label = (
            "Start the head's engine container"
            if rank == 0
            else ("Start the workers' engine containers")
        )
        (line,) = ops[label]
        assert f"--node-rank {rank}" in line and "--dist-init-addr 10.9.0.1:5000" in line
        # the key is added inside the entrypoint's interpreter (engines/sglang.py), not by argv
        assert "--entrypoint python3" in line and "--api-key" not in shlex.split(line)
        assert ("Prove a chat completion with the API key (refused without)" in ops) == (rank == 0)
        assert "Start the serve command in the Ray head" not in ops
    facts = converged(group)
    again = fake(three_nodes(n2={"network_socket_ifname": "ens5"})[:2], data, facts)
    assert [n.action for n in decide(again.state)["default"].nodes] == ["restart", "replace"]


def test_trtllm_across_nodes_gets_its_mpi_ssh_keys_once_and_each_node_only_its_side(
    reg: Registry, key_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = vllm_group(
        reg,
        key_file,
        tmp_path,
        engine_kind="trtllm",
        engine_version="1.2.1",
        engine_image=f"{registry_host(reg)}/nvidia/tensorrt-llm/release:1.2.1",
    )
    data.pop("model_served_name")
    run = fake(three_nodes()[:2], data)
    group = decide(run.state)["default"]
    keys_file = Path(group.plan.mpi_keys or "")
    assert keys_file.parent == tmp_path / "generated-keys" and keys_file.suffix == ".mpi"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert f"generated its MPI SSH keys into {keys_file}" in caplog.text
    keys = json.loads(keys_file.read_text())
    head, worker = (dict(commands(run, name)) for name in NAMES[:2])
    for ops in (head, worker):
        assert ops["MPI SSH folder of a TensorRT-LLM group (0700)"]
        # The keys reach the node on stdin (operations/secrets.py), never in a command line.
        lines = " ".join(" ".join(cmds) for cmds in ops.values())
        assert "PRIVATE KEY" not in lines and keys["client_public"] not in lines
    files = group.mpi_files
    assert [p.rsplit("/", 1)[1] for p, _ in files[NAMES[0]]] == ["id_ed25519", "known_hosts"]
    assert [p.rsplit("/", 1)[1] for p, _ in files[NAMES[1]]] == [
        "ssh_host_ed25519_key",
        "authorized_keys",
    ]
    assert dict(files[NAMES[0]])["/etc/ironserve/default/mpi/known_hosts"] == (
        f"[10.9.0.2]:2233 {keys['host_public']}\n"
    )
    assert keys["client"] not in str(group)  # never in a repr
    # A second run reuses the keys: the workers keep trusting the head.
    again = decide(fake(three_nodes()[:2], data).state)["default"]
    assert again.mpi_files == files


def test_mindie_rank_table_and_config_0640_only_rank_0_serves(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    hosts = [
        (
            f"@fake/atlas-{i}",
            {
                "node_role": "head" if i == 0 else "worker",
                "node_ip": f"10.197.90.{10 + i}",
                "npu_device_ips": [f"10.197.91.{10 * (i + 1) + d}" for d in range(8)],
            },
        )
        for i in range(2)
    ]
    data = {
        "model_id": "deepseek-ai/DeepSeek-R1",
        "model_served_name": "DeepSeek-R1",
        "model_format": "w8a8",
        "model_max_len": 32768,
        "engine_kind": "mindie",
        "engine_image": f"{registry_host(reg)}/{MINDIE}",
        "accelerator_kind": "ascend-910b-64g",
        "accelerator_count": 8,
        "network_socket_ifname": "enp189s0f0",
        "npu_netmask": "255.255.255.0",
        "npu_gateway": "10.197.91.254",
        "serving_api_key_file": str(key_file),
        "fake_delay": 0,
        "fake_delay_jitter": 0,
    }
    run = fake(hosts, data)
    for rank, (name, _) in enumerate(hosts):
        ops = commands(run, name)
        files = [c for label, cmds in ops if "configuration file" in label for c in cmds]
        assert [c for c in files if c.startswith("upload")] == [
            "upload /etc/ironserve/default/mindie-config.json",
            "upload /etc/ironserve/default/rank_table_file.json",
        ]
        assert "chmod 640 /etc/ironserve/default/rank_table_file.json" in files
        labels = [label for label, _ in ops]
        assert ("Wait until the engine answers /health (progress-aware)" in labels) == (rank == 0)
        assert "Start the serve command in the Ray head" not in labels
        container = [c for label, cmds in ops if "engine container" in label for c in cmds]
        assert "RANKTABLEFILE=/etc/ironserve/default/rank_table_file.json" in container[0]
    group = decide(run.state)["default"]
    assert {f.mode for n in group.nodes for f in n.launch.files} == {"0640"}


def test_vllm_vacc_single_server_serves_itself(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    hosts = [("@fake/va16-0", {"node_role": "head", "node_ip": "10.40.0.10"})]
    data = {
        "model_id": "deepseek-ai/DeepSeek-R1-0528",
        "model_served_name": "DeepSeek-R1-0528",
        "model_weights_dir": "/weights",
        "engine_kind": "vllm_vacc",
        "engine_image": f"{registry_host(reg)}/ai_deliver/vllm_vacc:AI3.2_GR_1202",
        "accelerator_kind": "va16-128g",
        "accelerator_count": 8,
        "serving_api_key_file": str(key_file),
        "fake_delay": 0,
        "fake_delay_jitter": 0,
    }
    run = fake(hosts, data)
    ops = dict(commands(run, "@fake/va16-0"))
    (line,) = ops["Start the head's engine container"]
    assert line.startswith("docker run -d --name ironserve-default-vllm-vacc --label")
    assert "--privileged" in line and "--tensor-parallel-size 32" in line
    assert "--env-file /etc/ironserve/default/secrets.env" in line
    assert "Prove a chat completion with the API key (refused without)" in ops
    assert "Wait until Ray shows every planned node and GPU" not in ops


def test_stop_removes_every_container_of_the_group_and_then_has_nothing_to_do(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    listing = re.compile(r"docker ps -a --filter")
    responses = {
        NAMES[0]: {listing: ["ironserve-default-ray", "ironserve-default-webui"]},
        NAMES[1]: {listing: ["ironserve-default-ray"]},
        NAMES[2]: {listing: []},
    }
    run = fake(three_nodes(), vllm_group(reg, key_file, tmp_path), responses, deploy_engine_stop)
    assert dict(commands(run, NAMES[0]))["Engine stop | Remove the serving group's containers"] == [
        "docker rm -f ironserve-default-ray ironserve-default-webui"
    ]
    assert dict(commands(run, NAMES[1]))["Engine stop | Remove the serving group's containers"] == [
        "docker rm -f ironserve-default-ray"
    ]
    assert commands(run, NAMES[2]) == []
    host = run.state.inventory.get_host(NAMES[0])
    assert any("label=ironserve.group=default" in c for c in host.connector.executed_commands)


def test_restart_restarts_head_then_workers_then_serves_and_waits(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    first = fake(three_nodes(), vllm_group(reg, key_file, tmp_path))
    facts = converged(decide(first.state)["default"])
    run = fake(three_nodes(), vllm_group(reg, key_file, tmp_path), facts, deploy_engine_restart)
    group = decide(run.state)["default"]
    assert [n.action for n in group.nodes] == ["restart"] * 3
    head = dict(commands(run, NAMES[0]))
    assert head["Engine restart | Start the head's engine container"] == [
        "docker restart ironserve-default-ray"
    ]
    order = [", ".join(run.state.get_op_meta(h).names) for h in run.state.get_op_order()]
    wanted = [
        "Engine restart | Start the head's engine container",
        "Engine restart | Start the workers' engine containers",
        "Engine restart | Wait until Ray shows every planned node and GPU",
        "Engine restart | Start the serve command in the Ray head",
        "Engine restart | Wait until the engine answers /health (progress-aware)",
    ]
    assert [op for op in order if op in wanted] == wanted
