"""Small, defensive value parsers shared by the fact modules (no pyinfra imports)."""

from __future__ import annotations

import re

# nvidia-smi, npu-smi and friends print these instead of a value.
_NULL_WORDS = frozenset({"", "n/a", "na", "none", "-", "err!", "unknown"})

_INT_RE = re.compile(r"^([-+]?\d+)(?:\s*[A-Za-z%/]+)?$")
_FLOAT_RE = re.compile(r"^([-+]?\d+(?:\.\d+)?)(?:\s*[A-Za-z%/]+)?$")
_HEX_RE = re.compile(r"^0[xX][0-9a-fA-F]+$")

_TRUE_WORDS = frozenset({"yes", "enabled", "enable", "on", "true", "active", "1"})
_FALSE_WORDS = frozenset({"no", "disabled", "disable", "off", "false", "not active", "0"})


def clean(value: str | None) -> str | None:
    """Strip a cell; map the tools' "no value" markers to ``None``.

    ``[N/A]``, ``[Not Supported]``, ``[Requested functionality has been deprecated]`` and any
    other bracketed nvidia-smi notice, ``N/A``, ``NA`` and empty cells all become ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        return None
    if text.lower() in _NULL_WORDS:
        return None
    return text


def to_int(value: str | None) -> int | None:
    """``"81559"``, ``"81559 MiB"``, ``"0x1F"`` -> int; markers and junk -> ``None``."""
    text = clean(value)
    if text is None:
        return None
    if _HEX_RE.match(text):
        return int(text, 16)
    match = _INT_RE.match(text)
    return int(match.group(1)) if match else None


def to_float(value: str | None) -> float | None:
    """``"69.85 W"``, ``"96.5"`` -> float; markers and junk -> ``None``."""
    text = clean(value)
    if text is None:
        return None
    match = _FLOAT_RE.match(text)
    return float(match.group(1)) if match else None


def to_bool(value: str | None) -> bool | None:
    """Yes/No, Enabled/Disabled, On/Off, Active/Not Active -> bool; anything else -> ``None``."""
    text = clean(value)
    if text is None:
        return None
    word = text.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def split_marked(lines: list[str], marker: str) -> dict[int, list[str]]:
    """Split loop output into per-device blocks.

    The facts that loop over devices print ``<marker> <n>`` before each device's output, e.g.
    ``@@npu 3``. Lines before the first marker are dropped.
    """
    blocks: dict[int, list[str]] = {}
    current: list[str] | None = None
    prefix = marker + " "
    for line in lines:
        if line.startswith(prefix):
            number = line[len(prefix) :].strip()
            if number.isdigit():
                current = blocks.setdefault(int(number), [])
                continue
        if current is not None:
            current.append(line)
    return blocks
