"""Helpers for the fact tests: fixture loading and running a fact on a ``@fake`` host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.facts import get_facts

SHARED = Path(__file__).resolve().parent.parent / "fixtures" / "outputs"
LOCAL = Path(__file__).resolve().parent / "fixtures"
MISSING = "##PYINFRA_NOCMD##"  # what pyinfra's requires_command guard prints


def lines(name: str) -> list[str]:
    """A fixture's lines, from tests/fixtures/outputs/ or tests/facts/fixtures/."""
    path = SHARED / name if (SHARED / name).exists() else LOCAL / name
    return path.read_text().splitlines()


def run_fact(
    fact: type, responses: dict[str, Any], kwargs: dict[str, Any] | None = None
) -> tuple[Any, list[str]]:
    """Gather ``fact`` on one ``@fake`` host scripted with ``responses`` (substring matchers).

    Returns the fact value and the commands the host received.
    """
    inventory = Inventory(
        (
            [
                (
                    "@fake/node-0",
                    {"fake_responses": responses, "fake_delay": 0, "fake_delay_jitter": 0},
                )
            ],
            {},
        )
    )
    state = State(inventory=inventory, config=Config())
    connect_all(state)
    (host,) = list(state.inventory)
    result = get_facts(state, fact, kwargs=kwargs) if kwargs else get_facts(state, fact)
    return result[host], list(host.connector.executed_commands)
