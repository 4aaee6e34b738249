"""Data that reaches a node's shell is quoted: the registry's pinned image in Open WebUI's pull,
role paths in the hub client's install and the Ascend and Vastai installers' commands. Each
command is split (or run by bash against a stub installer) with a value holding a space, which
unquoted would split into other words."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from ironserve.roles.ascend import deploy_ascend
from ironserve.roles.ascend.defaults import DRIVER_VERSION
from ironserve.roles.vastai import deploy_vastai
from ironserve.roles.vastai.defaults import DEFAULTS as VASTAI_DEFAULTS
from ironserve.roles.webui import deploy_webui
from ironserve.roles.weights import deploy_weights
from ironserve.serving import registry
from tests.deploys import test_ascend, test_vastai, test_weights
from tests.deploys.conftest import FakeRun
from tests.deploys.test_serve import NAMES, commands, fake, three_nodes, vllm_group
from tests.serving.fake_registry import Registry, serve

WEBUI = "open-webui/open-webui"


def run_bash(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30
    )


def stub_installer(path: Path, version: str) -> Path:
    """An installer at ``path`` that answers --check, --version and records each call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    calls = path.parent / "calls"
    path.write_text(
        f'#!/bin/sh\necho "$@" >> {shlex.quote(str(calls))}\n'
        f'[ "$1" = --version ] && echo {shlex.quote(version)}\nexit 0\n'
    )
    path.chmod(0o755)
    return calls


# --- Open WebUI: a registry's answer -----------------------------------------------------------


def _webui_data(reg: Registry, tmp_path: Path) -> dict[str, Any]:
    key = tmp_path / "api-key"
    key.write_text("engine-key-42\n")
    key.chmod(0o600)
    password = tmp_path / "pw"
    password.write_text("hunter22\n")
    password.chmod(0o600)
    host = reg.url.removeprefix("http://")
    return vllm_group(
        reg,
        key,
        tmp_path,
        webui_enabled=True,
        webui_admin_password_file=str(password),
        webui_image=f"{host}/{WEBUI}:v1",
    )


def test_webui_refuses_a_registry_digest_that_carries_a_command(tmp_path: Path) -> None:
    with serve(Registry()) as reg:
        reg.push("vllm/vllm-openai", "v0.11.0")
        reg.push(WEBUI, "v1")
        reg.lies[WEBUI] = "sha256:0000;touch /tmp/ironserve-pwned;#"
        with pytest.raises(DeployError, match=r"webui_image: .*is not sha256"):
            fake(three_nodes(), _webui_data(reg, tmp_path), deploy=deploy_webui)


def test_webui_pull_passes_the_pinned_image_as_one_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = f"registry.example/{WEBUI} x@sha256:{'a' * 64}"
    real = registry.resolve
    with serve(Registry()) as reg:
        reg.push("vllm/vllm-openai", "v0.11.0")
        data = _webui_data(reg, tmp_path)

        def resolve(image: str, **kwargs: Any) -> str:
            return pinned if WEBUI in image else real(image, **kwargs)

        monkeypatch.setattr(registry, "resolve", resolve)
        run = fake(three_nodes(), data, deploy=deploy_webui)
    ops = dict(commands(run, NAMES[0]))
    (pull,) = ops["Open WebUI | Pull Open WebUI by digest"]
    assert shlex.split(pull) == ["docker", "pull", "-q", pinned]


# --- the weights role: the hub client's venv ------------------------------------------------


def test_the_hub_client_install_quotes_the_venv(tmp_path: Path) -> None:
    from ironserve.lab.hub import repos as hub_repos
    from ironserve.lab.hub.server import Hub, serve_in_thread

    hub = Hub(tmp_path / "hub")
    hub.add_repo(hub_repos.RepoSpec(test_weights.REPO, 64 << 10, 2))
    server = serve_in_thread(hub)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    venv = "/opt/hub client"
    try:
        state = test_weights.node_state(url, False) | {"client": False}
        hosts = [
            (
                "@fake/n1",
                {
                    "node_role": "head",
                    "node_ip": "10.9.0.1",
                    "fake_responses": {test_weights.PROBE: json.dumps(state)},
                },
            )
        ]
        group_data = {
            "model_id": test_weights.REPO,
            "model_weights_dir": "/weights",
            "engine_kind": "vllm",
            "accelerator_kind": "h100-80g",
            "accelerator_count": 8,
            "hub_endpoint": url,
            "weights_client_venv": venv,
            "fake_delay": 0,
            "fake_delay_jitter": 0,
        }
        run = FakeRun(hosts, group_data)
        run.prepare_as_cli(deploy_weights)
    finally:
        server.shutdown()
        server.server_close()
    ops = dict(commands(run, "@fake/n1"))
    (install,) = ops["Weights | Install the hub client"]
    words = shlex.split(install)
    assert words[:6] == ["python3", "-m", "venv", venv, "&&", f"{venv}/bin/pip"]


# --- installers under a download folder whose name holds a space ---------------------------


def test_vastai_installer_path_is_one_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "download dir"
    monkeypatch.setitem(VASTAI_DEFAULTS, "vastai_installer_url", test_vastai.MIRROR)
    monkeypatch.setitem(VASTAI_DEFAULTS, "vastai_download_dir", str(folder))
    run = test_vastai.run_with({"/sys/class/iommu": test_vastai.IOMMU_OFF})
    run.prepare(deploy_vastai)
    (install,) = [
        c for name, cmds in commands(run, test_vastai.HOST) for c in cmds if "setkernelhook" in c
    ]
    calls = stub_installer(folder / test_vastai.RUN, "x")
    result = run_bash(install, tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls.read_text() == "install --setkernelhook\n"


def test_ascend_installer_path_and_version_are_quoted(tmp_path: Path) -> None:
    folder = tmp_path / "download dir"
    data = test_ascend.GROUP_DATA | {"ascend_download_dir": str(folder)}
    run = FakeRun(test_ascend.hosts([test_ascend.unconfigured()] * 2), data)
    run.prepare(deploy_ascend)
    driver = [
        c
        for name, cmds in commands(run, test_ascend.HOSTS[0])
        for c in cmds
        if "npu-driver" in c and ("--check" in c or "--version" in c or "--full" in c)
    ]
    run_file = f"Ascend-hdk-910b-npu-driver_{DRIVER_VERSION}_linux-x86-64.run"
    calls = stub_installer(folder / run_file, DRIVER_VERSION)
    for command in driver:
        result = run_bash(command, tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    assert calls.read_text().split("\n")[:3] == ["--check --quiet", "--version", "--full --quiet"]
