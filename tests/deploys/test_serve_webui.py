"""roles/webui on @fake hosts: off by default; on, it refuses to run without an admin password
file (never a default), and otherwise puts the 0600 env file and runs one Open WebUI container
on the serving node, pointed at the endpoint, with no secret on its command line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from ironserve.roles.engine import deploy_engine
from ironserve.roles.webui import deploy_webui
from tests.deploys.conftest import FakeRun
from tests.deploys.test_serve import (
    NAMES,
    VLLM,
    commands,
    fake,
    registry_host,
    three_nodes,
    vllm_group,
)
from tests.serving.fake_registry import Registry, serve

WEBUI = "open-webui/open-webui"


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    registry = Registry()
    with serve(registry) as running:
        running.push(VLLM, "v0.11.0")
        running.push(WEBUI, "v0.6.36")
        yield running


def both() -> None:
    deploy_engine()
    deploy_webui()


def secret(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def group_data(reg: Registry, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    key = secret(tmp_path / "api-key", "engine-key-42\n")
    return vllm_group(
        reg, key, tmp_path, webui_image=f"{registry_host(reg)}/{WEBUI}:v0.6.36", **extra
    )


def test_webui_is_off_by_default(reg: Registry, tmp_path: Path) -> None:
    run = fake(three_nodes(), group_data(reg, tmp_path), deploy=both)
    assert not any("WebUI" in op for name in NAMES for op, _ in commands(run, name))


def test_webui_without_a_password_file_is_refused(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="webui_admin_password_file must be given"):
        fake(three_nodes(), group_data(reg, tmp_path, webui_enabled=True), deploy=both)


def test_webui_password_file_readable_by_others_is_refused(reg: Registry, tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("hunter22\n")
    password.chmod(0o644)
    data = group_data(reg, tmp_path, webui_enabled=True, webui_admin_password_file=str(password))
    with pytest.raises(DeployError, match=r"webui_admin_password_file: .* must be 0600"):
        fake(three_nodes(), data, deploy=both)


def test_webui_runs_on_the_serving_node_pointed_at_the_endpoint(
    reg: Registry, tmp_path: Path
) -> None:
    password = secret(tmp_path / "pw", "hunter22\n")
    data = group_data(reg, tmp_path, webui_enabled=True, webui_admin_password_file=str(password))
    run = fake(three_nodes(), data, deploy=both)
    ops = dict(commands(run, NAMES[0]))
    # written on the node from stdin (operations/secrets.py), never uploaded by files.put
    (write,) = ops["Open WebUI | Open WebUI env file with its secrets (0600)"]
    assert write.endswith("ironserve-secret /etc/ironserve/default/webui.env")
    assert not any("hunter22" in c for cmds in ops.values() for c in cmds)
    (line,) = ops["Open WebUI | Start Open WebUI"]
    assert line.startswith("docker run -d --name ironserve-default-webui --label")
    assert "-e OPENAI_API_BASE_URL=http://10.9.0.1:8000/v1" in line
    assert "-e ENABLE_SIGNUP=False" in line and "-p 3000:8080" in line
    assert f"{registry_host(reg)}/{WEBUI}@sha256:" in line
    assert "hunter22" not in line and "engine-key-42" not in line
    for name in NAMES[1:]:
        assert not any("WebUI" in op for op, _ in commands(run, name))


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_pyinfra_diff_prints_no_secret(reg: Registry, tmp_path: Path) -> None:
    """`pyinfra --diff` prints what files.put writes (when the operation runs); the env files
    (API key, admin password, session secret) are written on the node from stdin instead."""
    password = secret(tmp_path / "pw", "hunter22\n")
    data = group_data(
        reg,
        tmp_path,
        webui_enabled=True,
        webui_admin_password_file=str(password),
        serve_ray_timeout=0.01,  # the fake nodes run no Ray: the run stops at the first wait
        serve_poll_interval=0.01,
    )
    hosts = three_nodes()
    for _, host_data in hosts:
        host_data["fake_responses"] = {}
    run = FakeRun(hosts, data)
    run.state.config.DIFF = True
    captured, pyinfra_logger = Captured(), logging.getLogger("pyinfra")
    level = pyinfra_logger.level
    pyinfra_logger.setLevel(logging.DEBUG)
    pyinfra_logger.addHandler(captured)
    try:
        # the WebUI first: the engine's Ray wait fails on fake nodes and stops the run there
        run.prepare_as_cli(lambda: (deploy_webui(), deploy_engine()))
        run.execute()
    finally:
        pyinfra_logger.removeHandler(captured)
        pyinfra_logger.setLevel(level)
    text = "\n".join(captured.lines)
    for name in NAMES:  # every node wrote its env file (the operation ran, diff on)
        assert any("/etc/ironserve/default/secrets.env" in c for c in run.commands(name))
    assert any("/etc/ironserve/default/webui.env" in c for c in run.commands(NAMES[0]))
    assert "engine-key-42" not in text and "hunter22" not in text
