"""Decisions a role makes once per run stay each host's own: two serving groups whose nodes
resolve the same image name through different registry mirrors (``container_runtime_registry_
mirrors``, a per-host setting) each get the digest their own mirror serves, for the engine
(roles/engine/decide.py, resolved with the group head's settings) and for Open WebUI
(roles/webui, resolved with the serving node's settings). Before, the first host to resolve an
image name decided the digest for every host of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.roles.engine import deploy_engine
from ironserve.roles.engine.decide import decide
from ironserve.roles.webui import deploy_webui
from tests.deploys.test_serve import commands, fake, vllm_group
from tests.serving.fake_registry import Registry, serve

ENGINE = "vllm/vllm-openai"  # Docker Hub names: dockerd asks the node's mirrors first
WEBUI = "open-webui/open-webui"
GROUPS = {"@fake/a": ("a", "10.9.1.1"), "@fake/b": ("b", "10.9.2.1")}


@pytest.fixture(scope="module")
def mirrors() -> Iterator[dict[str, Registry]]:
    """One mirror per group, serving the same tags with different contents (digests)."""
    with serve(Registry()) as mirror_a, serve(Registry()) as mirror_b:
        for name, mirror in (("a", mirror_a), ("b", mirror_b)):
            mirror.push(ENGINE, "v0.11.0", payload=f"engine from mirror {name}")
            mirror.push(WEBUI, "v0.6.36", payload=f"webui from mirror {name}")
        yield {"a": mirror_a, "b": mirror_b}


def _hosts(mirrors: dict[str, Registry]) -> list[tuple[str, dict[str, Any]]]:
    """Two one-node serving groups; each node names its own group's mirror."""
    return [
        (
            name,
            {
                "node_role": "head",
                "node_ip": ip,
                "serving_group": group,
                "container_runtime_registry_mirrors": [mirrors[group].url],
            },
        )
        for name, (group, ip) in GROUPS.items()
    ]


def _secret(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _data(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    key = _secret(tmp_path / "api-key", "engine-key-42\n")
    # vllm_group's registry only names engine_image, replaced here by the Docker Hub name.
    return vllm_group(Registry(), key, tmp_path, engine_image=f"{ENGINE}:v0.11.0", **extra)


def _digest(mirror: Registry, repository: str, tag: str) -> str:
    body = mirror.images[repository][tag]
    return next(k for k, v in mirror.images[repository].items() if k != tag and v == body)


def test_each_groups_engine_image_is_resolved_through_its_own_heads_mirror(
    mirrors: dict[str, Registry], tmp_path: Path
) -> None:
    run = fake(_hosts(mirrors), _data(tmp_path))
    groups = decide(run.state)
    wanted = {g: f"{ENGINE}@{_digest(mirrors[g], ENGINE, 'v0.11.0')}" for g in ("a", "b")}
    assert wanted["a"] != wanted["b"]
    assert {g: groups[g].image for g in ("a", "b")} == wanted
    for name, (group, _) in GROUPS.items():
        ops = dict(commands(run, name))
        pulls = ops["Pull the engine image by digest (every node in parallel)"]
        assert pulls == [f"docker pull -q {wanted[group]}"]


def test_each_serving_nodes_webui_is_resolved_through_its_own_mirror(
    mirrors: dict[str, Registry], tmp_path: Path
) -> None:
    password = _secret(tmp_path / "pw", "hunter22\n")
    data = _data(
        tmp_path,
        webui_enabled=True,
        webui_admin_password_file=str(password),
        webui_image=f"{WEBUI}:v0.6.36",
    )

    def both() -> None:
        deploy_engine()
        deploy_webui()

    run = fake(_hosts(mirrors), data, deploy=both)
    seen = {}
    for name, (group, _) in GROUPS.items():
        (line,) = dict(commands(run, name))["Open WebUI | Start Open WebUI"]
        seen[group] = next(word for word in line.split() if word.startswith(f"{WEBUI}@"))
    assert seen == {g: f"{WEBUI}@{_digest(mirrors[g], WEBUI, 'v0.6.36')}" for g in ("a", "b")}
