"""Running a packaged deploy on ``@fake`` hosts (pyinfra API mode, no nodes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyinfra
import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state


class Stateful(dict[str, Any]):
    """``fake_responses`` of a node whose state changes during the run: ``before`` until the
    node has executed a command containing ``trigger``, ``after`` from then on."""

    def __init__(
        self, before: dict[str, Any], after: dict[str, Any], trigger: str, executed: list[str]
    ) -> None:
        super().__init__()
        self.before, self.after, self.trigger, self.executed = before, after, trigger, executed

    def _now(self) -> dict[str, Any]:
        changed = any(self.trigger in command for command in self.executed)
        return self.after if changed else self.before

    def items(self) -> Any:
        return self._now().items()

    def __len__(self) -> int:  # the connector reads `fake_responses or {}`
        return len(self._now()) or 1


class FakeRun:
    """One pyinfra run of a deploy on @fake hosts: prepare (add_deploy), then execute."""

    def __init__(self, hosts: list[tuple[str, dict[str, Any]]], group_data: dict[str, Any]):
        inventory = Inventory((hosts, group_data))
        self.state = State(inventory=inventory, config=Config())
        connect_all(self.state)

    def prepare(self, deploy: Callable[..., Any]) -> None:
        add_deploy(self.state, deploy)

    def prepare_as_cli(self, deploy: Callable[[], None]) -> None:
        """Add the deploy the way the pyinfra CLI does (`pyinfra INV deploys/x.py`): operations
        ordered by their place in the code, so a host that skips an operation still lines up
        with the others after it. (API mode numbers each host's operations instead, pairing
        unrelated operations of different hosts.)"""
        saved = pyinfra.is_cli
        self.state.set_stage(StateStage.Prepare)
        pyinfra.is_cli = True
        try:
            with ctx_state.use(self.state):
                for host in self.state.inventory.get_active_hosts():
                    with ctx_host.use(host):
                        deploy()
        finally:
            pyinfra.is_cli = saved

    def execute(self) -> None:
        run_ops(self.state)

    def change_after(self, name: str, trigger: str, after: dict[str, Any]) -> None:
        """``name`` answers as before until it has run a command containing ``trigger``, then
        with ``after`` (the node's state changed by the run's operations)."""
        host = self.state.inventory.get_host(name)
        before = dict(host.connector.data.get("fake_responses") or {})
        host.connector.data["fake_responses"] = Stateful(
            before, after, trigger, host.connector.executed_commands
        )

    def commands(self, name: str) -> list[str]:
        host = self.state.inventory.get_host(name)
        return list(host.connector.executed_commands)

    def changed_ops(self, name: str) -> list[str]:
        """Names of the operations that would change (or changed) ``name``."""
        host = self.state.inventory.get_host(name)
        names = []
        for op_hash in self.state.get_op_order():
            meta = self.state.get_op_meta(op_hash)
            data = self.state.ops.get(host, {}).get(op_hash)
            if data is not None and data.operation_meta.will_change and _may_run(data):
                names.append(", ".join(sorted(meta.names)))
        return names

    def failed(self) -> list[str]:
        return [h.name for h in self.state.failed_hosts]


@pytest.fixture
def fake_run() -> Iterator[Callable[..., FakeRun]]:
    yield FakeRun


def _may_run(data: Any) -> bool:
    """False when the operation's ``_if`` is already known to be false at prepare time (a
    condition on another operation's result is only known when it runs: counted as true)."""
    conditions = data.global_arguments.get("_if") or []
    conditions = conditions if isinstance(conditions, list) else [conditions]
    for condition in conditions:
        try:
            if not condition():
                return False
        except Exception:  # another operation's result, not known yet
            continue
    return True
