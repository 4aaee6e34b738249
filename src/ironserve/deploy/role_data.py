"""Role defaults as typed models: one accessor that roles, preflight and health read alike.

A role declares its data keys once, as a :class:`RoleData` model in ``roles/<role>/defaults.py``
(role-prefixed fields with their defaults; ``None`` = must be given), and derives the
``DEFAULTS`` dict from it (pyinfra's ``data_defaults``, the validator's known keys).
``Model.of(host)`` is that host's own values, typed: the inventory's where it sets the key, the
default where it does not. Whoever reads another host's data (preflight checking every node,
health) reads it through the same accessor, so no host's value stands in for another's.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import Self

from ironserve.config.values import problem_text
from ironserve.errors import InputError, Problem


class RoleData(BaseModel):
    """Base of every role's data model: frozen, and a field per data key."""

    # Numbers where text is meant (a branch written 570) are taken as the text.
    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The role's ``DEFAULTS``: every key with its default."""
        return cls().model_dump()

    @classmethod
    def of(cls, host: Any) -> Self:
        """``host``'s values (pyinfra Host, or anything with ``.data.dict()`` or ``.data``
        as a mapping); a key set to None where None is no valid value takes the default."""
        return cls.from_data(getattr(host, "name", "?"), _data(host))

    @classmethod
    def from_data(cls, name: str, data: dict[str, Any]) -> Self:
        values = {}
        for key, field in cls.model_fields.items():
            if key not in data:
                continue
            if data[key] is None and not _allows_none(field.annotation):
                continue  # "not set" written as None: the default
            values[key] = data[key]
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            # One problem per key: a union (``int | str``) reports each member's refusal.
            found: dict[str, list[str]] = {}
            for e in error.errors():
                texts = found.setdefault(str(e["loc"][0]), [])
                if (text := problem_text(e, values)) not in texts:
                    texts.append(text)
            raise InputError(
                [Problem(name, key, "; ".join(texts)) for key, texts in found.items()]
            ) from error


def _data(host: Any) -> dict[str, Any]:
    data = host.data
    return dict(data.dict()) if hasattr(data, "dict") and callable(data.dict) else dict(data)


def _allows_none(annotation: Any) -> bool:
    """Whether None is a value of the field (``str | None``), not just "not set"."""
    if annotation is None or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_allows_none(arg) for arg in typing.get_args(annotation))
    return False
