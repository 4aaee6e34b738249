"""Shared test helpers: the project root and the example inventories."""

from __future__ import annotations

from pathlib import Path

# pyinfra's CLI package monkey-patches the process with gevent when imported; importing it later,
# after the lab tests have started threads (paramiko, docker), can deadlock on the import lock.
import pyinfra_cli  # noqa: F401
import pytest

ROOT = Path(__file__).resolve().parent.parent
# The lab's inventories (lab.py, lab_dynamo.py) need a lab up: every other one is an example.
EXAMPLE_INVENTORIES = sorted(
    p for p in (ROOT / "inventories").glob("*.py") if not p.name.startswith("lab")
)


@pytest.fixture
def root() -> Path:
    return ROOT
