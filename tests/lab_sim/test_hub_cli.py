"""`ironserve lab hub ...` against an in-process hub named by a lab state file (no Docker)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ironserve.cli import app
from ironserve.lab import state as st
from ironserve.lab.hub.cli import parse_size
from ironserve.lab.hub.control import HubControl
from ironserve.lab.hub.repos import RepoSpec
from ironserve.lab.hub.server import Hub, serve_in_thread

REPO = "lab/cli"


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    hub = Hub(tmp_path / "hub")
    hub.add_repo(RepoSpec(REPO, 1 << 20, 1))
    server = serve_in_thread(hub)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    state = st.LabState(lab_id="t", prefix="t", profile="gpu2", light=True, created_at=time.time())
    state.services["hub"] = st.ServiceState(
        name="hub", container_id="x", address="127.0.0.1", url=url
    )
    st.save(state, tmp_path)
    (tmp_path / "hub-token").write_text("tok\n")
    monkeypatch.setenv("IRONSERVE_LAB_DIR", str(tmp_path))
    yield tmp_path, url
    server.shutdown()
    server.server_close()


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["lab", "hub", *args])
    return result.exit_code, result.output


def test_sizes() -> None:
    assert parse_size("8M") == 8 << 20 and parse_size("512k") == 512 << 10
    assert parse_size("2GiB") == 2 << 30 and parse_size("100") == 100
    with pytest.raises(ValueError):
        parse_size("fast")


def test_cli_drives_the_hub(lab_dir: tuple[Path, str]) -> None:
    _, url = lab_dir
    control = HubControl(url)
    assert _run("limit", "8M")[0] == 0
    assert control.stats()["limit_bytes_per_s"] == 8 << 20
    assert _run("limit", "off")[0] == 0
    assert control.stats()["limit_bytes_per_s"] is None
    code, out = _run("fault", "corrupt", "*.safetensors", "--after-bytes", "1K", "--count", "2")
    assert code == 0, out
    assert control.faults()[0] == {
        "kind": "corrupt", "path": "*.safetensors", "count": 2, "after_bytes": 1024,
        "delay_s": 1.0, "repo": None,
    }  # fmt: skip
    assert _run("fault", "--clear")[0] == 0 and control.faults() == []
    assert _run("fault", "explode", "*")[0] == 1  # the hub refuses it
    code, out = _run("repos", "--add", "lab/cli-gated", "--size", "2M", "--shards", "2", "--gated")
    assert code == 0, out
    repos = json.loads(_run("repos", "--json")[1])
    assert repos["lab/cli-gated"]["gated"] and repos["lab/cli-gated"]["shards"] == 2
    gated = httpx.get(f"{url}lab/cli-gated/resolve/main/config.json", headers={
        "Authorization": "Bearer tok"}, trust_env=False)  # fmt: skip
    assert gated.status_code == 200  # --gated takes the lab's hub-token
    httpx.get(f"{url}{REPO}/resolve/main/config.json", trust_env=False)
    code, out = _run("stats", "--json", "--reset")
    assert code == 0 and json.loads(out)["repos"]["lab/cli-gated"] == len(gated.content)
    assert control.stats()["total_bytes"] == 0


def test_cli_without_a_lab_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONSERVE_LAB_DIR", str(tmp_path))
    code, out = _run("stats")
    assert code == 2 and "no lab is up" in out
