"""The engine's command line, checked against the flag table of the version the image claims.

The tables are the ones ironserve ships (catalog/data/engines/<engine>.json, copied into the
image at the same relative path), so the lab engine refuses exactly what the real version's
argparse would: an unknown option is ``error: unrecognized arguments`` and exit 2. Like
argparse (allow_abbrev) an unambiguous prefix of a long option is accepted; like vLLM's
FlexibleArgumentParser ``--a_b`` means ``--a-b`` and ``--x.y`` is option ``--x``. A click
command (TensorRT-LLM's trtllm-serve) is parsed with ``exact=True``: option names as written,
no prefixes, no folding of ``_`` and ``-``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

TABLES_ENV = "IRONSERVE_LAB_ENGINE_FLAGS"  # a folder holding vllm.json / sglang.json
KIND_ENV = "IRONSERVE_LAB_ENGINE"
VERSION_ENV = "IRONSERVE_LAB_ENGINE_VERSION"


def tables_dir() -> Path:
    env = os.environ.get(TABLES_ENV)
    if env:
        return Path(env)
    # In the source tree and in the image: ironserve/catalog/data/engines beside this package.
    return Path(__file__).resolve().parents[2] / "catalog" / "data" / "engines"


def version_key(version: str) -> tuple[int, ...]:
    """ "0.10.1.1" -> (0, 10, 1, 1); "0.8.5.post1" -> (0, 8, 5, 0, 1)."""
    parts: list[int] = []
    for piece in version.replace("post", "0.").split("."):
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts)


@dataclass(frozen=True)
class Table:
    engine: str
    version: str  # the table's own version (nearest at or below the declared one)
    flags: frozenset[str]
    value_flags: frozenset[str]
    optional_value_flags: frozenset[str]


def load_table(engine: str, version: str) -> Table:
    doc: dict[str, Any] = json.loads((tables_dir() / f"{engine}.json").read_text())
    known = sorted(doc["versions"], key=version_key)
    candidates = [v for v in known if version_key(v) <= version_key(version)]
    if not candidates:
        raise ValueError(f"{engine} {version} is older than every flag table ({known[0]})")
    chosen = candidates[-1]
    entry = doc["versions"][chosen]
    return Table(
        engine=engine,
        version=chosen,
        flags=frozenset(entry["flags"]),
        value_flags=frozenset(doc.get("value_flags", [])),
        optional_value_flags=frozenset(
            entry.get("optional_value_flags", doc.get("optional_value_flags", []))
        ),
    )


@dataclass
class Parsed:
    options: dict[str, str | bool] = field(default_factory=dict)  # canonical option -> value
    positionals: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def get(self, *names: str, default: str | None = None) -> str | None:
        for name in names:
            value = self.options.get(name)
            if isinstance(value, str):
                return value
        return default

    def int(self, *names: str, default: int) -> int:
        value = self.get(*names)
        return default if value is None else int(value)

    def has(self, name: str) -> bool:
        return name in self.options


def _canonical(table: Table, option: str, exact: bool = False) -> str | None:
    if exact:
        return option if option in table.flags else None
    if option.startswith("--"):
        option = "--" + option[2:].split(".", 1)[0].replace("_", "-")
    else:
        option = option.split(".", 1)[0]
    if option in table.flags:
        return option
    if option.startswith("--"):
        matches = [f for f in table.flags if f.startswith(option)]
        if len(matches) == 1:  # argparse's allow_abbrev
            return matches[0]
    return None


# Short aliases the programs read under their long names.
ALIASES = {"-tp": "--tensor-parallel-size", "-pp": "--pipeline-parallel-size"}


def parse(table: Table, argv: list[str], exact: bool = False) -> Parsed:
    """Options, positionals and unknown options of ``argv`` under ``table`` (``exact``: click's
    matching, see the module's docstring)."""
    parsed = Parsed()
    tokens = list(argv)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("-") or token == "-":
            parsed.positionals.append(token)
            continue
        name, has_inline, inline = token.partition("=")
        option = _canonical(table, name, exact)
        if option is None:
            parsed.unknown.append(token)
            continue
        option = ALIASES.get(option, option)
        value: str | bool = True
        if has_inline:
            value = inline
        elif option in table.value_flags or name in table.value_flags:
            if not tokens:
                raise SystemExit(f"argument {name}: expected one argument")
            value = tokens.pop(0)
        elif option in table.optional_value_flags and tokens and not tokens[0].startswith("-"):
            value = tokens.pop(0)
        parsed.options[option] = value
    return parsed


def fail(prog: str, usage: str, message: str) -> NoReturn:
    """argparse's way out: usage and ``prog: error: message`` on stderr, exit 2."""
    print(f"usage: {prog} {usage}", file=sys.stderr)
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class _Tee(io.TextIOBase):
    """Writes to the process's own stream and to the container's log."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            with contextlib.suppress(OSError, ValueError):
                stream.write(text)
                stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()


def log_to_container() -> None:
    """In the image ($IRONSERVE_LAB_LOG_TO_PID1=1), copy the log to the container's PID 1 stdout,
    where ``docker logs`` reads it: ``docker exec -d`` (how the builders start ``vllm serve``)
    throws the process's own output away. Real vLLM does not do this."""
    if os.getpid() == 1 or os.environ.get("IRONSERVE_LAB_LOG_TO_PID1") != "1":
        return
    try:
        container_log = open("/proc/1/fd/1", "a", buffering=1)  # noqa: SIM115 (process-long)
    except OSError:
        return
    sys.stdout = _Tee(sys.stdout, container_log)
    sys.stderr = _Tee(sys.stderr, container_log)


def declared(default_engine: str) -> tuple[str, str]:
    """(engine, version) the image declares: $IRONSERVE_LAB_ENGINE(_VERSION), set per image tag."""
    engine = os.environ.get(KIND_ENV, default_engine)
    version = os.environ.get(VERSION_ENV, "")
    if not version:
        print(f"lab engine: {VERSION_ENV} is not set (the image tag's version)", file=sys.stderr)
        raise SystemExit(2)
    return engine, version.lstrip("v")
