"""The lab's Dynamo pieces without Docker: the stand-in ``dynamo.vllm`` (every worker command
line the builders write parses under Dynamo's and vLLM 0.31's tables and becomes the mocker's;
an unknown option exits 2), the Dynamo lab inventory over a lab state (its pools, the images at
the lab registry, `lab status`'s endpoint and inventory), and what a lab publishes (Dynamo's
images only for a Dynamo lab, no other engine's there)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from ironserve.lab import dynamo_image, registry, serving
from ironserve.lab import engine_image as ei
from ironserve.lab import state as st
from ironserve.lab.engine import dynamo_vllm_cli
from tests.lab.test_lab import BIN, _fake_state, run

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "engines"


def _worker_lines() -> list[list[str]]:
    """Every ``python3 -m dynamo.vllm`` worker argv in the Dynamo goldens."""
    found = []
    for path in sorted(GOLDEN.glob("dynamo-*.txt")):
        for line in path.read_text().splitlines():
            if line.startswith("docker run") and " -m dynamo.vllm " in line:
                tokens = shlex.split(line)
                found.append(tokens[tokens.index("dynamo.vllm") + 1 :])
    return found


@pytest.fixture
def version(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(dynamo_vllm_cli.DYNAMO_VERSION_ENV, dynamo_image.VERSION)
    return dynamo_image.VERSION


def test_every_rendered_worker_line_runs_as_the_mocker(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _worker_lines()
    assert len(lines) >= 6
    for argv in lines:
        started: list[tuple[str, list[str], dict[str, str]]] = []

        def execve(path: str, args: list[str], env: dict[str, str]) -> None:
            started.append((path, args, env))  # noqa: B023 (called before the next line)
            raise SystemExit(0)

        monkeypatch.setattr(os, "execve", execve)
        with pytest.raises(SystemExit):
            dynamo_vllm_cli.main(argv)
        (path, args, env) = started[0]
        assert (path, args[1:3]) == (sys.executable, ["-m", "dynamo.mocker"])
        mocker = dict(zip(args[3::2], args[4::2], strict=True))
        assert mocker["--model-path"] == argv[argv.index("--model") + 1]
        assert mocker["--model-name"] == argv[argv.index("--served-model-name") + 1]
        side = (
            argv[argv.index("--disaggregation-mode") + 1]
            if "--disaggregation-mode" in argv
            else "agg"
        )
        assert mocker["--disaggregation-mode"] == side
        assert mocker["--max-model-len"] == argv[argv.index("--max-model-len") + 1]
        # The mocker's system /health follows its endpoint, as a real worker's does.
        assert json.loads(env[dynamo_vllm_cli.HEALTH_ENV]) == ["generate"]


def test_an_option_no_dynamo_vllm_worker_takes_exits_2(
    version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*_worker_lines()[0], "--is-prefill-worker"]  # gone in Dynamo 1.x
    with pytest.raises(SystemExit) as exit_:
        dynamo_vllm_cli.main(argv)
    assert exit_.value.code == 2
    assert (
        "dynamo.vllm: error: unrecognized arguments: --is-prefill-worker" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exit_:
        dynamo_vllm_cli.main(["--served-model-name", "x"])
    assert exit_.value.code == 2
    assert "required: --model" in capsys.readouterr().err


def _dynamo_lab(directory: Path, count: int = 3) -> st.LabState:
    _fake_state(directory, "labgpu", count)
    state = st.load(directory)
    assert state is not None
    state.dynamo = True
    state.services["registry"] = st.ServiceState(
        name="r", container_id="0", address="172.30.250.4", url="http://172.30.250.4:5000"
    )
    st.save(state, directory)
    (directory / "api_key").write_text("lab-key\n")
    (directory / "api_key").chmod(0o600)
    return state


def test_the_dynamo_lab_inventory_plans_frontend_prefill_and_decode_nodes(tmp_path: Path) -> None:
    state = _dynamo_lab(tmp_path)
    env = {"IRONSERVE_LAB_DIR": str(tmp_path)}
    done = run(str(BIN / "ironserve"), "plan", "-i", "inventories/lab_dynamo.py", "--json", env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    doc = json.loads(done.stdout)
    doc = doc[0] if isinstance(doc, list) else doc
    names = [n.name for n in state.nodes]
    assert doc["engine"] == "dynamo" and doc["feasible"]
    dynamo = doc["dynamo"]
    assert (dynamo["mode"], dynamo["router_mode"], dynamo["control_plane"]) == (
        "disaggregated",
        "kv",
        "etcd-nats",
    )
    assert dynamo["frontend_node"] == names[0]
    assert {p["name"]: p["nodes"] for p in dynamo["pools"]} == {
        "prefill": [names[1]],
        "decode": [names[2]],
    }
    registry_address = "172.30.250.4:5000"
    refs = dynamo_image.references()
    assert doc["image"] == f"{registry_address}/{refs['engine_image']}"
    assert dynamo["etcd_image"] == f"{registry_address}/{refs['dynamo_etcd_image']}"
    assert dynamo["nats_image"] == f"{registry_address}/{refs['dynamo_nats_image']}"
    # `lab status` gives the frontend's endpoint (the gateway on the head) and the key's file.
    found = serving.status(tmp_path)
    assert found == {
        "endpoint": f"http://{state.nodes[0].address}:{doc['gateway']['port']}/v1",
        "api_key_file": str(tmp_path / "api_key"),
        "inventory": str(ROOT / "inventories" / "lab_dynamo.py"),
    }


def test_a_lab_not_serving_dynamo_keeps_the_lab_inventory(tmp_path: Path) -> None:
    _fake_state(tmp_path, "labgpu", 3)
    assert serving.lab_inventory(tmp_path) == ROOT / "inventories" / "lab.py"


def test_only_a_dynamo_lab_publishes_dynamo_images(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    def image(kind: str) -> ei.EngineImage:
        built.append(kind)
        return ei.EngineImage(kind, "1", f"local-{kind}", f"repo/{kind}")

    monkeypatch.setattr(dynamo_image, "ensure_all", lambda c, b: [image("dynamo")])
    monkeypatch.setattr(ei, "ensure_engine", lambda c, b: "engine")
    monkeypatch.setattr(ei, "ensure_tagged", lambda c, e, kind, v: image(f"stand-in {kind}"))
    monkeypatch.setattr(registry.vllm_image, "ensure", lambda c, b: "local-vllm")
    dynamo_lab = registry._engine_images(object(), "base", dynamo=True)
    assert [i.kind for i in dynamo_lab] == ["dynamo"] and built == ["dynamo"]
    built.clear()
    other = registry._engine_images(object(), "base", dynamo=False)
    assert "dynamo" not in built
    assert {i.kind for i in other} >= {"vllm", "stand-in sglang"}
    assert "local-vllm" in {i.local for i in other}


def test_a_lab_without_the_real_vllm_publishes_only_the_stand_ins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(client: object, base: str) -> str:
        raise AssertionError("the real vLLM's image was built")

    monkeypatch.setattr(ei, "ensure_engine", lambda c, b: "engine")
    monkeypatch.setattr(
        ei, "ensure_tagged", lambda c, e, kind, v: ei.EngineImage(kind, v, f"stand-in-{v}", kind)
    )
    monkeypatch.setattr(registry.vllm_image, "ensure", refuse)
    images = registry._engine_images(object(), "base", dynamo=False, real_vllm=False)
    assert images and all(i.local.startswith("stand-in-") for i in images)
    assert registry.vllm_image.VERSION not in {i.version for i in images if i.kind == "vllm"}


def test_the_runtime_image_is_named_by_what_goes_into_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = dynamo_image.runtime_tag("base")
    assert dynamo_image.runtime_tag("base") == before
    monkeypatch.setattr(dynamo_image, "STANDIN_MAIN", dynamo_image.STANDIN_MAIN + "\n")
    assert dynamo_image.runtime_tag("base") != before
    assert dynamo_image.runtime_tag("other-base") != before
    assert dynamo_image.service_tag("base", "etcd") != dynamo_image.service_tag("base", "nats")
