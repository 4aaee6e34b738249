"""roles/weights against a hostile hub, on @fake hosts: a listing naming a file outside the
repository stops the run while the deploy is being prepared, naming the hub and the file, before
any command (not even the weights fact) reaches a node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError

from ironserve.lab.hub import repos as hub_repos
from ironserve.lab.hub.server import Hub, serve_in_thread
from ironserve.roles.weights import deploy_weights
from tests.deploys.conftest import FakeRun

REPO = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
TRAVERSAL = "../../../../../etc/cron.d/ironserve-x"
NAMES = ["@fake/n1", "@fake/n2"]


@pytest.fixture(scope="module")
def hostile_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = Hub(tmp_path_factory.mktemp("hub"))
    names = (TRAVERSAL, "/root/.ssh/authorized_keys")
    state.add_repo(hub_repos.RepoSpec(REPO, 64 << 10, 2, unsafe_names=names))
    server = serve_in_thread(state)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_hostile_listing_stops_the_role_before_any_command(
    hostile_hub: str, tmp_path: Path
) -> None:
    hosts = [
        (
            name,
            {
                "node_role": "head" if i == 0 else "worker",
                "node_ip": f"10.9.0.{i + 1}",
                "network_socket_ifname": "eth0",
            },
        )
        for i, name in enumerate(NAMES)
    ]
    group_data = {
        "model_id": REPO,
        "model_weights_dir": "/weights",
        "engine_kind": "vllm",
        "accelerator_kind": "h100-80g",
        "accelerator_count": 8,
        "hub_endpoint": hostile_hub,
        "weights_fanout_key_dir": str(tmp_path / "keys"),
    }
    run = FakeRun(hosts, group_data)
    with pytest.raises(DeployError) as error:
        run.prepare_as_cli(deploy_weights)
    message = str(error.value)
    assert hostile_hub in message and repr(TRAVERSAL) in message
    assert "\n" not in message
    for name in NAMES:
        assert run.commands(name) == []
    assert not (tmp_path / "keys").exists()
