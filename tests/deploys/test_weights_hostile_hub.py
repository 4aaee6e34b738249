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
from tests.deploys.test_weights import NAMES, unprepared

REPO = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
TRAVERSAL = "../../../../../etc/cron.d/ironserve-x"


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
    run = unprepared(hostile_hub, tmp_path)
    with pytest.raises(DeployError) as error:
        run.prepare_as_cli(deploy_weights)
    message = str(error.value)
    assert hostile_hub in message and repr(TRAVERSAL) in message
    assert "\n" not in message
    for name in NAMES:
        assert run.commands(name) == []
    assert not (tmp_path / "keys").exists()
