"""Render the project's jinja2 templates (``templates/<role>/<name>.j2``): pure functions, so
golden tests check exactly what the roles upload."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "templates"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def template_path(role: str, name: str) -> str:
    return str(TEMPLATES_DIR / role / f"{name}.j2")


def render(role: str, name: str, **context: Any) -> str:
    """The text of ``templates/<role>/<name>.j2`` rendered with ``context``."""
    return _environment().get_template(f"{role}/{name}.j2").render(**context)
