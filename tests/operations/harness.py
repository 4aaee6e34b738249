"""pyinfra's own form of operation tests, as a small pytest harness: ``<op>/<case>.json``.

A case gives an operation (its folder's name: ``ironserve.operations.apt.packages``) its
arguments (``args``, ``kwargs``) and the facts of the host (``facts``: fact name -> value, or
for a fact taking arguments fact name -> {``"k=v"``: value}); the operation's generator runs with
a host that answers exactly those facts (a fact the case does not declare fails the case) and
the commands it yields are compared with ``commands``. ``noop`` is compared with the reason an
operation gives for yielding nothing. ``converged_facts`` are the facts once the commands ran:
called again with them, the operation must yield nothing (a second run changes nothing). A
case whose commands cannot converge (a check that fails the host) says why in ``no_converge``.

Commands: a string yields its text (``StringCommand`` as its raw value; one given stdin
``["stdin", text, stdin]``), a file upload ``["upload", text, dest]``, a Python step
``["function", name]``. Fact values are JSON: a dict
whose keys are all digits gets int keys (per-NPU facts).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinfra.api.command import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.context import ctx_host

CASES = Path(__file__).resolve().parent


class UndeclaredFact(AssertionError):
    pass


def _int_keys(value: Any) -> Any:
    if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
        return {int(k): v for k, v in value.items()}
    return value


def fact_key(kwargs: dict[str, Any]) -> str:
    return ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs))


class CaseHost:
    """The host an operation sees: the case's facts, its noop reasons, its name and data."""

    def __init__(self, facts: dict[str, Any], data: dict[str, Any] | None = None) -> None:
        self.facts = facts
        self.name = "case-host"
        self.data = dict(data or {})
        self.noops: list[str] = []
        self.asked: set[str] = set()

    def get_fact(self, fact: type, *args: Any, **kwargs: Any) -> Any:
        name = getattr(fact, "name", f"{fact.__module__}.{fact.__name__}")
        if name not in self.facts:
            raise UndeclaredFact(f"the case does not declare the fact {name} ({kwargs or ''})")
        value = self.facts[name]
        # pyinfra's own arguments (_timeout, _sudo, ...) shape how a fact runs, not what it is.
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        if kwargs:
            key = fact_key(kwargs)
            if not isinstance(value, dict) or key not in value:
                raise UndeclaredFact(f"the case does not declare {name} for {key}")
            value = value[key]
        self.asked.add(name)
        return _int_keys(value)

    def noop(self, description: str) -> None:
        self.noops.append(description)


def operation_of(name: str) -> Callable[..., Any]:
    module, _, function = name.rpartition(".")
    op = getattr(importlib.import_module(module), function)
    inner: Callable[..., Any] = op._inner  # the generator pyinfra's @operation wraps
    return inner


def rendered(command: Any) -> Any:
    if isinstance(command, str):
        return command
    if isinstance(command, StringCommand):
        stdin = command.connector_arguments.get("_stdin")
        if stdin is not None:
            return ["stdin", command.get_raw_value(), stdin]
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        src = command.src
        text = src.getvalue() if hasattr(src, "getvalue") else str(src)
        return ["upload", text, command.dest]
    if isinstance(command, FunctionCommand):
        return ["function", command.function.__name__]
    raise TypeError(f"unexpected command {command!r}")


def run(name: str, case: dict[str, Any], facts: dict[str, Any]) -> tuple[list[Any], CaseHost]:
    """The commands the operation yields for ``case`` with ``facts``, and the host it saw."""
    host = CaseHost(facts, case.get("data"))
    with ctx_host.use(host):
        commands = [
            rendered(c) for c in operation_of(name)(*case.get("args", []), **case.get("kwargs", {}))
        ]
    return commands, host


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case
