"""Golden files: what deploys/serve.py runs on each node, one per topology -- the Plan's container
with the image pinned by digest and the ironserve labels (group, role, rank, spec hash), and the
serve command of a Ray head wrapped to record its pid and spec -- plus Open WebUI's container.

Regenerate with ``IRONSERVE_UPDATE_GOLDEN=1 pytest tests/golden``, then read the diff.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from ironserve.engines import build_launches
from ironserve.roles.webui import render as webui
from ironserve.serving import apikey, registry, spec
from tests.golden.test_golden_engines import TOPOLOGIES

GOLDEN_DIR = Path(__file__).parent / "serve"
UPDATE_ENV = "IRONSERVE_UPDATE_GOLDEN"
DIGEST = "sha256:" + "0123456789abcdef" * 4
# The env file's revision for a fixed key: the label changes with the key, the key never shows.
SECRETS_REV = apikey.secrets_revision("golden", apikey.secrets_env("golden-key"))


def check_golden(path: Path, text: str) -> None:
    if os.environ.get(UPDATE_ENV):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} is missing; run with {UPDATE_ENV}=1 to create it"
    assert text == path.read_text(), f"{path} differs; run with {UPDATE_ENV}=1 and read the diff"


def render(name: str) -> str:
    ctx = TOPOLOGIES[name]()
    image = registry.parse_image(ctx.image).pinned(DIGEST)
    lines = [f"# {name}: {ctx.image} pinned as {image}"]
    for launch in build_launches(ctx):
        digest = spec.spec_hash(launch, image, SECRETS_REV)
        lines.append(f"\n## node {launch.node} ({launch.address}) {launch.role} rank {launch.rank}")
        lines.append(shlex.join(spec.run_argv(launch, ctx.group, image, digest)))
        if launch.serve_exec is not None:
            lines.append(shlex.join(spec.serve_argv(launch)))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_serve_commands_match_golden(name: str) -> None:
    check_golden(GOLDEN_DIR / f"{name}.txt", render(name))


def test_the_serve_wrapper_runs_the_plans_argv_exactly() -> None:
    ctx = TOPOLOGIES["l40sx2-3node-r1distill32b-vllm"]()
    head = build_launches(ctx)[0]
    assert head.serve_exec is not None
    argv = spec.serve_argv(head)
    # `sh -c SCRIPT ironserve-serve HASH <argv>`: the script ends in `exec "$@"` after a shift.
    assert argv[argv.index("sh") + 3] == spec.SERVE_ARGV0
    assert argv[argv.index("sh") + 5 :] == head.serve_exec
    assert 'shift && exec "$@" >/proc/1/fd/1 2>/proc/1/fd/2' in argv[argv.index("-c") + 1]


def test_webui_container_matches_golden_and_holds_no_secret() -> None:
    container = webui.container(
        "r1",
        "ghcr.io/open-webui/open-webui@" + DIGEST,
        "http://10.0.0.10:8000/v1",
        3000,
        "admin@example.org",
        "ops",
        "DeepSeek-R1",
    )
    env = webui.env_file("p4ssw0rd", "golden-key", "r1")
    text = shlex.join(container.docker_run_argv()) + "\n"
    check_golden(GOLDEN_DIR / "webui.txt", text)
    assert "p4ssw0rd" not in text and "golden-key" not in text
    assert "--env-file /etc/ironserve/r1/webui.env" in text
    assert env.splitlines()[:2] == ["WEBUI_ADMIN_PASSWORD=p4ssw0rd", "OPENAI_API_KEY=golden-key"]
    assert env == webui.env_file("p4ssw0rd", "golden-key", "r1")  # stable: idempotent runs
    assert webui.session_secret("golden-key", "r1") != webui.session_secret("other", "r1")
