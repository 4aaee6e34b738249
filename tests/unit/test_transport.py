"""The one transport to nodes (deploy/transport.py): pyinfra's State over the inventory file,
commands with stdin and timeouts, facts, a full deploy through pyinfra's API with its results
read from pyinfra's State; ``ironserve weights`` on top of it. On ``@fake`` hosts: no nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.facts.server import Hostname

from ironserve.deploy import transport
from ironserve.weights import cli as weights_cli
from ironserve.weights import remote

RESPONSES = {
    "du -sb": "1000\t/data/m\n234\t/data/m.incoming\n",
    "python3 -c": '{"config.json": [12, "ab", "cd"]}\n',
    "uname -n": "n1\n",
}


def _inventory(tmp_path: Path, responses: dict[str, object]) -> Path:
    path = tmp_path / "inventories" / "fake.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        f"nodes = [\n"
        f'    ("@fake/n1", {{"fake_delay": 0, "fake_responses": {responses!r}}}),\n'
        f'    ("@fake/n2", {{"fake_delay": 0}}),\n'
        f"]\n"
    )
    return path


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return _inventory(tmp_path, RESPONSES)


def test_commands_and_facts_go_through_the_inventorys_connectors(inventory: Path) -> None:
    state = transport.open_state(inventory)
    n1 = state.inventory.get_host("@fake/n1")
    assert [h.name for h in state.inventory] == ["@fake/n1", "@fake/n2"]
    result = transport.run(state, n1, "du -sb /data/m", timeout=5)
    assert result.ok and result.stdout.startswith("1000")
    assert transport.fact(state, n1, Hostname, timeout=5) == "n1"
    assert remote.held_bytes(state, n1, "/data/m") == 1234
    assert remote.hashes(state, n1, "/data/m", ["config.json"]) == {"config.json": [12, "ab", "cd"]}
    executed = n1.connector.executed_commands
    assert any("du -sb /data/m /data/m.incoming" in c for c in executed)
    assert transport.read_file(state, n1, "/etc/ironserve/g/secrets.env") == ""


def _deploy(root: Path, body: str, name: str = "hello") -> Path:
    path = root / "deploys" / f"{name}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(body)
    return path


def test_a_deploy_runs_through_pyinfras_api_and_reports_its_results(
    inventory: Path, tmp_path: Path
) -> None:
    deploy = _deploy(
        tmp_path,
        "from pyinfra.operations import server\n"
        'server.shell(name="Say hello", commands=["echo hello"])\n',
    )
    dry = transport.run_deploy(inventory, deploy, dry=True)
    assert dry.ok and dry.operations == [
        {"names": ["Say hello"], "planned": ["@fake/n1", "@fake/n2"]}
    ]
    done = transport.run_deploy(inventory, deploy, dry=False)
    assert done.ok and done.operations == [
        {
            "names": ["Say hello"],
            "changed": ["@fake/n1", "@fake/n2"],
            "no_change": [],
            "failed": [],
        }
    ]
    assert (
        weights_cli.summary(done)
        == "weights: 2 changed, 0 unchanged, 0 failed (operations x hosts)"
    )
    assert weights_cli.summary(dry) == "weights: dry run, 2 operation(s) planned"


def test_a_failed_operation_or_a_refusing_deploy_is_read_from_the_state(
    inventory: Path, tmp_path: Path
) -> None:
    failing = _deploy(
        tmp_path,
        "from pyinfra import host\n"
        "from pyinfra.operations import server\n"
        'if host.name == "@fake/n1":\n'
        '    server.shell(name="Fail", commands=["false-on-n1"])\n',
        "failing",
    )
    _inventory(tmp_path, {**RESPONSES, "false-on-n1": {"success": False}})
    result = transport.run_deploy(inventory, failing, dry=False)
    assert not result.ok
    assert result.failed_hosts == ["@fake/n1"]
    refusing = _deploy(
        tmp_path,
        "from pyinfra.api.exceptions import DeployError\n"
        'raise DeployError("weights: disk: /data has 1 bytes free")\n',
        "refusing",
    )
    refused = transport.run_deploy(inventory, refusing, dry=False)
    assert not refused.ok and "disk: /data has 1 bytes free" in str(refused.error)


def test_weights_pull_polls_the_bytes_over_the_deploys_own_connections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyinfra's current State is process-wide: the progress poller shares the deploy's."""
    slow = {**RESPONSES, "sleep": {"stdout": ""}}
    inventory = _inventory(tmp_path, slow)
    inventory.write_text(inventory.read_text().replace('"fake_delay": 0,', '"fake_delay": 0.3,'))
    deploy = _deploy(
        tmp_path,
        "from pyinfra import host, logger\n"
        "from pyinfra.operations import server\n"
        'logger.info(f"{host.name}: repo verified")\n'
        'server.shell(name="Fetch", commands=["sleep 1", "sleep 2", "sleep 3"])\n',
        "weights",
    )
    targets = [("@fake/n1", "/data/m", 2000), ("@fake/n2", "/data/m", 2000)]
    with weights_cli._messages(verbose=False):
        result = weights_cli._with_progress(inventory, deploy, targets, 4000)
    assert result.ok, result.error
    assert weights_cli.summary(result).startswith("weights: 2 changed, 0 unchanged, 0 failed")
    out = capsys.readouterr()
    assert "@fake/n1: repo verified" in out.out and "@fake/n2: repo verified" in out.out
    assert "weights on 2 node(s)" in out.err
