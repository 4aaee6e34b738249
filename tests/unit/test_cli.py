"""The CLI contract scripts rely on: exit codes, one JSON object on stdout, host/field errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ironserve.cli import app
from tests.conftest import EXAMPLE_INVENTORIES, ROOT
from tests.unit.fake_hub import serve_repo

runner = CliRunner()
CONTRACT_KEYS = {
    "feasible",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "expert_parallel_size",
    "max_model_len",
    "weights_bytes",
    "reasons",
    "nodes",
}


def sizing(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["plan", *args, "--json"])
    doc = json.loads(result.stdout) if result.exit_code in (0, 1) else {}
    return result.exit_code, doc


@pytest.mark.parametrize(
    ("accel", "nodes", "code", "ranks"),
    [("h200-141g", 1, 0, 8), ("h100-80g", 1, 1, 8), ("h100-80g", 2, 0, 16)],
)
def test_plan_sizing_form_exit_codes_and_keys(
    accel: str, nodes: int, code: int, ranks: int
) -> None:
    exit_code, doc = sizing(
        "--model", "deepseek-ai/DeepSeek-R1", "--accelerator", accel,
        "--nodes", str(nodes), "--devices-per-node", "8",
    )  # fmt: skip
    assert exit_code == code
    assert doc.keys() >= CONTRACT_KEYS
    assert doc["feasible"] is (code == 0)
    assert doc["tensor_parallel_size"] * doc["pipeline_parallel_size"] == ranks
    assert [n["role"] for n in doc["nodes"]] == ["head"] + ["worker"] * (nodes - 1)
    assert all(n["launch"] for n in doc["nodes"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "no-such/model", "--accelerator", "h100-80g"], "unknown model"),
        (["--model", "deepseek-ai/DeepSeek-R", "--accelerator", "h100-80g"], "DeepSeek-R1'?"),
        (["--model", "deepseek-ai/DeepSeek-R1", "--accelerator", "h100"], "'h100-80g'?"),
        (["--accelerator", "h100-80g"], "--model"),
    ],
)
def test_plan_bad_input_exits_2_with_a_suggestion(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["plan", *args, "--nodes", "1", "--devices-per-node", "8"])
    assert result.exit_code == 2
    assert needle in result.stderr


@pytest.mark.parametrize("count", ["0", "-1"])
def test_plan_non_positive_counts_are_bad_input(count: str) -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            "--model",
            "deepseek-ai/DeepSeek-R1",
            "--accelerator",
            "h100-80g",
            "--nodes",
            count,
        ],
    )
    assert result.exit_code == 2


def test_forced_tp_breaking_divisibility_is_infeasible_not_bad_input() -> None:
    code, doc = sizing(
        "--model", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "--accelerator", "h100-80g",
        "--nodes", "2", "--devices-per-node", "8", "--tensor-parallel-size", "16",
    )  # fmt: skip
    assert code == 1 and doc["feasible"] is False
    assert any("heads % TP == 0" in r for r in doc["reasons"])


@pytest.mark.parametrize("inventory", EXAMPLE_INVENTORIES, ids=lambda p: p.stem)
def test_every_example_inventory_validates_and_plans_feasible(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert runner.invoke(app, ["validate", "-i", str(inventory)]).exit_code == 0
    result = runner.invoke(app, ["plan", "-i", str(inventory), "--json"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 0, doc["reasons"]
    assert doc["feasible"] is True
    # What the Plan derives once, for scripts: the endpoint on the API node, the key's files,
    # the layout, the ports (the API port among them) and every node's disk need.
    api = next(n for n in doc["nodes"] if n["serves_api"])
    assert doc["endpoint"]["url"] == f"http://{api['address']}:{doc['endpoint']['port']}/v1"
    assert doc["api_key"]["node_file"].endswith("/secrets.env")
    assert doc["layout"]["kind"] in ("one-node", "ray", "native", "dynamo")
    assert doc["ports"][0] == {
        "port": doc["endpoint"]["port"],
        "nodes": [api["name"]],
        "purpose": "OpenAI API",
    }
    assert [d["node"] for d in doc["disk"]] == [n["name"] for n in doc["nodes"]]
    assert {d["weights_bytes"] for d in doc["disk"]} == {doc["weights_bytes"]}
    assert all(d["need_bytes"] == int(d["weights_bytes"] * d["margin"]) for d in doc["disk"])
    # The staging estimate: the whole checkpoint, the group's image, every step's link named.
    staging = doc["staging"]
    assert (staging["weights_bytes"], staging["image"]) == (doc["weights_bytes"], doc["image"])
    assert all(staging[step]["link"] for step in ("download", "stream", "image_pull"))
    assert staging["bound_by"] in ("the site link", "the cluster network")


def test_validate_reports_every_problem_with_host_and_field(tmp_path: Path) -> None:
    (tmp_path / "site.py").write_text(
        "nodes = [\n"
        '  ("n0", {"node_role": "head", "node_ip": "10.0.0.1"}),\n'
        '  ("n1", {"node_role": "head", "node_ip": "10.0.0.1", "engine_tensor_paralel_size": 8}),\n'
        "]\n"
    )
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "site.py").write_text(
        'model_id = "deepseek-ai/DeepSeek-R1"\n'
        'accelerator_kind = "h100-80g"\naccelerator_count = 8\n'
        'network_socket_ifname = "eth0"\n'
    )
    result = runner.invoke(app, ["validate", "-i", str(tmp_path / "site.py")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert (
        "n1: engine_tensor_paralel_size: unknown key (did you mean 'engine_tensor_parallel_size'?)"
        in lines
    )
    result = runner.invoke(app, ["validate", "-i", str(tmp_path / "site.py"), "--json"])
    doc = json.loads(result.stdout)
    assert doc["valid"] is False
    assert {"host": "n1", "field": "engine_tensor_paralel_size"}.items() <= doc["problems"][
        0
    ].items()


def test_render_prints_a_nodes_commands_and_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    inventory = "inventories/ascend910b_2node_r1_mindie.py"
    result = runner.invoke(app, ["render", "-i", inventory, "--node", "atlas-1", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["node"] == "atlas-1" and doc["rank"] == 1
    assert any(f["path"].endswith("rank_table_file.json") for f in doc["files"])
    assert doc["gateway"] is None  # the gateway runs on the API node only
    head = runner.invoke(app, ["render", "-i", inventory, "--node", "atlas-0", "--json"])
    gateway = json.loads(head.stdout)["gateway"]
    assert (gateway["node"], gateway["upstream"]) == ("atlas-0", f"{doc['address'][:-1]}0:18000")
    text = runner.invoke(app, ["render", "-i", inventory, "--node", "atlas-0"]).stdout
    assert "docker run -d --name ironserve-default-gateway" in " ".join(text.split())
    missing = runner.invoke(app, ["render", "-i", inventory, "--node", "atlas-2"])
    assert missing.exit_code == 2 and "atlas-2" in missing.stderr


def test_catalog_flags_answers_per_version() -> None:
    old = runner.invoke(
        app, ["catalog", "flags", "vllm", "--version", "0.8.5", "--enable-reasoning"]
    )
    assert old.exit_code == 0
    new = runner.invoke(
        app, ["catalog", "flags", "vllm", "--version", "0.11.0", "--enable-reasoning"]
    )
    assert new.exit_code == 1 and "--enable-reasoning" in new.stdout


def test_console_script_is_installed_and_answers() -> None:
    exe = shutil.which("ironserve", path=str(Path(sys.executable).parent))
    assert exe, "the ironserve console script is not installed next to this Python"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("ironserve ")


def test_a_model_outside_the_catalog_is_planned_from_its_hub_config(tmp_path: Path) -> None:
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "torch_dtype": "bfloat16",
    }
    out = tmp_path / "config.json"
    with serve_repo("acme/Qwen-7B-Custom", {"config.json": json.dumps(config).encode()}) as url:
        fetched = runner.invoke(
            app,
            [
                "catalog",
                "fetch-config",
                "acme/Qwen-7B-Custom",
                "--out",
                str(out),
                "--endpoint",
                url,
            ],
        )
    assert fetched.exit_code == 0, fetched.stdout
    assert json.loads(out.read_text())["num_key_value_heads"] == 4
    result = runner.invoke(
        app,
        [
            "plan", "--model", "acme/Qwen-7B-Custom", "--model-config", str(out),
            "--accelerator", "rtx4090-24g", "--nodes", "1", "--devices-per-node", "1", "--json",
        ],
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["feasible"] and doc["model"] == "acme/Qwen-7B-Custom"
    assert 14e9 < doc["weights_bytes"] < 16e9  # ~7.6B parameters in bf16, from the shapes


def test_fetch_config_of_a_gated_repo_without_token_is_bad_input(tmp_path: Path) -> None:
    with serve_repo("acme/gated", {"config.json": b"{}"}, token="hf-secret") as url:
        result = runner.invoke(
            app,
            [
                "catalog",
                "fetch-config",
                "acme/gated",
                "--out",
                str(tmp_path / "c.json"),
                "--endpoint",
                url,
            ],
        )
    assert result.exit_code == 2
    assert "hf-secret" not in result.stdout + result.stderr


def test_commands_that_connect_nowhere_start_without_pyinfra() -> None:
    """`ironserve plan`, `validate`, `runbook`, `lab ...` run hundreds of times in scripts and
    tests: their start-up must not pay for pyinfra, paramiko and gevent (about half a second of
    CPU), which only the commands that connect import, when they run."""
    probe = (
        "import sys, ironserve.cli; "
        "print(sorted(m for m in ('pyinfra', 'paramiko', 'gevent', 'jinja2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
