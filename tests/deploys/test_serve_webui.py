"""roles/webui on @fake hosts: off by default; on, it refuses to run without an admin password
file (never a default), and otherwise puts the 0600 env file and runs one Open WebUI container
on the serving node, pointed at the endpoint, with no secret on its command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from ironserve.roles.engine import deploy_engine
from ironserve.roles.webui import deploy_webui
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
    assert (
        "upload /etc/ironserve/default/webui.env"
        in ops["Open WebUI | Open WebUI env file with its secrets (0600)"]
    )
    assert (
        "chmod 600 /etc/ironserve/default/webui.env"
        in ops["Open WebUI | Open WebUI env file with its secrets (0600)"]
    )
    (line,) = ops["Open WebUI | Start Open WebUI"]
    assert line.startswith("docker run -d --name ironserve-default-webui --label")
    assert "-e OPENAI_API_BASE_URL=http://10.9.0.1:8000/v1" in line
    assert "-e ENABLE_SIGNUP=False" in line and "-p 3000:8080" in line
    assert f"{registry_host(reg)}/{WEBUI}@sha256:" in line
    assert "hunter22" not in line and "engine-key-42" not in line
    for name in NAMES[1:]:
        assert not any("WebUI" in op for op, _ in commands(run, name))
