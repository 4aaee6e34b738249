"""Shared test helpers: the project root and the example inventories."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_INVENTORIES = sorted(p for p in (ROOT / "inventories").glob("*.py") if p.name != "lab.py")


@pytest.fixture
def root() -> Path:
    return ROOT
