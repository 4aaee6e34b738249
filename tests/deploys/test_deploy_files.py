"""The deploy files themselves (``deploys/*.py``), loaded the way `pyinfra INVENTORY
deploys/provision.py` loads them, on ``@fake`` hosts: they reach the roles as the package
``ironserve.roles`` and run exactly what the roles run when called directly."""

from __future__ import annotations

import pytest
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_state
from pyinfra_cli.util import load_deploy_file

from ironserve.deploy import context
from tests.conftest import ROOT
from tests.deploys import nvidia_node as node
from tests.deploys.conftest import FakeRun
from tests.deploys.test_provision_roles import HOST, operation_commands, run


@pytest.fixture(autouse=True)
def _fresh_plans() -> None:
    context._RUNS.clear()


def _run_file(path: str, provisioned: bool) -> FakeRun:
    data = {**node.HOST_DATA, "fake_responses": node.responses(provisioned)}
    fake = FakeRun([(HOST, data)], {})
    fake.state.set_stage(StateStage.Prepare)
    with ctx_state.use(fake.state):
        load_deploy_file(fake.state, path)
    fake.execute()
    assert fake.failed() == []
    return fake


@pytest.mark.parametrize("provisioned", [False, True])
def test_provision_file_runs_the_packaged_roles(
    provisioned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # as `pyinfra inventories/x.py deploys/provision.py` runs
    via_file = _run_file("deploys/provision.py", provisioned)
    context._RUNS.clear()
    # The same operations change the node as when the roles are called one by one.
    assert via_file.changed_ops(HOST) == run(provisioned).changed_ops(HOST)
    commands = operation_commands(via_file)
    if provisioned:
        assert commands == []  # a converged node: nothing to do
    else:
        assert any("nvidia-driver-580-server-open" in c for c in commands)
        assert "nvidia-ctk runtime configure --runtime=docker --set-as-default" in commands
