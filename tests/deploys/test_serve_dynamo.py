"""A Dynamo group on @fake hosts: the roles that start serving containers refuse it, naming the
host, before any operation exists (issue 16: planned and rendered, not deployed yet)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from ironserve.roles.engine import deploy_engine, deploy_engine_restart, deploy_engine_stop
from ironserve.roles.gateway.deploy import deploy_gateway
from ironserve.roles.webui.deploy import deploy_webui
from tests.deploys.conftest import FakeRun


def _group(tmp_path: Path) -> dict[str, Any]:
    return {
        "model_id": "Qwen/Qwen3-32B",
        "engine_kind": "dynamo",
        "dynamo_mode": "disaggregated",
        "dynamo_kv_fabric": "tcp",
        "accelerator_kind": "h100-80g",
        "accelerator_count": 8,
        "network_socket_ifname": "eth0",
        "serving_api_key_dir": str(tmp_path / "keys"),
        "webui_enabled": True,
        "fake_delay": 0,
        "fake_delay_jitter": 0,
    }


HOSTS = [
    ("@fake/p0", {"node_role": "head", "node_ip": "10.9.0.1", "node_dynamo_pool": "prefill"}),
    ("@fake/d0", {"node_role": "worker", "node_ip": "10.9.0.2", "node_dynamo_pool": "decode"}),
]


@pytest.mark.parametrize(
    "deploy",
    [deploy_engine, deploy_engine_restart, deploy_engine_stop, deploy_gateway, deploy_webui],
    ids=lambda d: d.__name__,
)
def test_a_dynamo_group_is_refused_before_any_operation(
    deploy: Callable[[], None], tmp_path: Path
) -> None:
    run = FakeRun([(name, dict(data, fake_responses={})) for name, data in HOSTS], _group(tmp_path))
    with pytest.raises(
        DeployError, match=r"@fake/(p0|d0): Dynamo groups are planned but not deployed"
    ):
        run.prepare_as_cli(deploy)
    for name, _ in HOSTS:
        host = run.state.inventory.get_host(name)
        assert not run.state.ops.get(host)
