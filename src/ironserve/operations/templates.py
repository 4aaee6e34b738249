"""Render the package's jinja2 templates (``ironserve/templates/<role>/<name>.j2``, package data
read through importlib.resources, so an installed wheel renders as a checkout does): pure
functions, so golden tests check exactly what the roles upload."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

PACKAGE = "ironserve"
TEMPLATES = "templates"  # the folder inside the package


def package_loader(folder: str = TEMPLATES) -> jinja2.PackageLoader:
    """A loader over ``ironserve/<folder>`` wherever the package is installed."""
    return jinja2.PackageLoader(PACKAGE, folder)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=package_loader(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(role: str, name: str, **context: Any) -> str:
    """The text of ``templates/<role>/<name>.j2`` rendered with ``context``."""
    return _environment().get_template(f"{role}/{name}.j2").render(**context)
