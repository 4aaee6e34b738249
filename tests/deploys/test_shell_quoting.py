"""Data that reaches a node's shell is quoted: the registry's pinned image in Open WebUI's pull
(a registry's answer is not the inventory's, so validation cannot vouch for it). Role paths (the
hub client's venv, the installers' download folders) are quoted too, but a path holding a space
or a shell character no longer gets past validation (tests/unit/test_validation.py)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from ironserve.roles.webui import deploy_webui
from ironserve.serving import registry
from tests.deploys.test_serve import NAMES, commands, fake, three_nodes, vllm_group
from tests.serving.fake_registry import Registry, serve

WEBUI = "open-webui/open-webui"


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
