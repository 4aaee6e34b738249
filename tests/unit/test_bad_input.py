"""Bad input is one line naming host and field, exit 2, never a traceback, nothing contacted;
every remote probe of health and `weights verify` is bounded (issue "Hardening": tracebacks
instead of errors, probes without timeouts).

Each case here crashed with a traceback, exited 0, or waited without a limit before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironserve.cli import app
from tests.unit.test_validation import GROUP

runner = CliRunner()


# The CLI: one line per problem, exit 2, no traceback, no node contacted.


def _site(tmp_path: Path, group: str, inventory: str | None = None) -> Path:
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "site.py").write_text(group)
    path = tmp_path / "site.py"
    path.write_text(
        inventory
        or 'nodes = [("n0", {"ssh_hostname": "127.0.0.1", "ssh_port": 1, "node_role": "head", '
        '"node_ip": "10.20.0.10"})]\n'
    )
    return path


def _group_text(**extra: Any) -> str:
    return "".join(f"{k} = {v!r}\n" for k, v in {**GROUP, **extra}.items())


def _one_line_exit_2(result: Any, *words: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert all(w in lines[0] for w in words), lines[0]
    return str(lines[0])


def test_an_inventory_that_is_not_python_is_bad_input() -> None:
    result = runner.invoke(app, ["validate", "-i", "/etc/hostname"])
    _one_line_exit_2(result, "/etc/hostname", "inventory", "cannot be loaded")


def test_a_group_data_file_that_raises_is_bad_input(tmp_path: Path) -> None:
    inventory = _site(tmp_path, "raise RuntimeError('broken group data')\n")
    result = runner.invoke(app, ["validate", "-i", str(inventory)])
    _one_line_exit_2(result, "group_data", "RuntimeError: broken group data")


@pytest.mark.parametrize(
    "extra",
    [
        {"engine_version": "0.6.6", "engine_data_parallel_size": 2},
        {"engine_version": "0.7.3", "engine_expert_parallel": True, "accelerator_count": 8},
    ],
    ids=["dp-on-0.6.6", "ep-on-0.7.3"],
)
@pytest.mark.parametrize("command", ["validate", "plan", "render"])
def test_what_the_engine_version_cannot_launch_is_bad_input_everywhere(
    tmp_path: Path, extra: dict[str, Any], command: str
) -> None:
    model = {"model_id": "deepseek-ai/DeepSeek-R1", "accelerator_kind": "h200-141g"}
    inventory = _site(tmp_path, _group_text(**model, **{"accelerator_count": 8, **extra}))
    args = [command, "-i", str(inventory)] + (["--node", "n0"] if command == "render" else [])
    _one_line_exit_2(runner.invoke(app, args), "n0: engine_version:", "does not accept")


def test_health_validates_before_any_ssh(tmp_path: Path) -> None:
    inventory = _site(tmp_path, _group_text(engine_port=99999))
    for tier in ("node", "preflight", "all"):
        result = runner.invoke(app, ["health", "-i", str(inventory), "--tier", tier])
        _one_line_exit_2(result, "n0: engine_port:")
        assert "summary" not in result.stdout  # no check ran: no table


def test_the_hardening_values_exit_2_from_the_cli(tmp_path: Path) -> None:
    bad = {"model_weights_dir": "../../etc", "accelerator_count": True}
    inventory = _site(tmp_path, _group_text(**bad))
    result = runner.invoke(app, ["validate", "-i", str(inventory)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert {line.split(":")[1].strip() for line in lines} == set(bad)


# Every remote probe is bounded.


def test_every_preflight_fact_has_a_timeout() -> None:
    from ironserve.roles.preflight.deploy import FACT_TIMEOUT_S, host_findings
    from tests.unit.test_rules import _node

    state, host = _node(free=10**12, present=0)
    asked: list[tuple[str, Any]] = []
    answer = host.get_fact

    def get_fact(cls: type, *args: Any, **kwargs: Any) -> Any:
        asked.append((cls.__name__, kwargs.get("_timeout")))
        return answer(cls, *args, **kwargs)

    host.get_fact = get_fact  # type: ignore[method-assign]
    host_findings(state, host)
    assert len(asked) >= 8
    assert {timeout for _, timeout in asked} == {FACT_TIMEOUT_S}, asked


def test_a_node_whose_preflight_hangs_is_unknown_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gevent  # type: ignore[import-untyped]

    from ironserve.health import preflight
    from ironserve.health import runner as node_runner
    from ironserve.health.model import Status

    class Host:
        name = "n0"

    monkeypatch.setattr(node_runner, "_state", lambda inventory, node: (object(), [Host()]))
    monkeypatch.setattr(node_runner, "NODE_TIMEOUT_S", 0.2)
    monkeypatch.setattr("ironserve.deploy.context.host_plans", lambda state: {})
    monkeypatch.setattr(preflight, "_host", lambda state, host: gevent.sleep(30))
    nodes, results = preflight.run_preflight_tier("site.py")
    assert nodes == ["n0"] and [r.status for r in results] == [Status.UNKNOWN]
    assert "did not finish" in results[0].observed


def test_weights_verify_scales_its_limit_with_the_bytes_to_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ironserve.deploy import transport
    from ironserve.weights import remote

    r1 = 640 * 2**30  # DeepSeek-R1's checkpoint, about 640 GiB
    assert remote.verify_timeout(0) == remote.VERIFY_TIMEOUT_S
    assert remote.verify_timeout(r1) > r1 / (200 * 2**20)  # slower than 200 MiB/s still fits
    limits: list[float] = []

    def run(state: Any, host: Any, command: str, *, timeout: float, **kw: Any) -> Any:
        limits.append(timeout)
        return transport.CommandResult(True, "{}")

    monkeypatch.setattr(transport, "run", run)

    class Host:
        name = "n0"

    remote.hashes(object(), Host(), "/data/models/x", ["a"], r1)
    assert limits == [remote.verify_timeout(r1)]
