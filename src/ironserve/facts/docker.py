"""Container runtime facts: the contents of ``/etc/docker/daemon.json`` and the runtimes the
running Docker daemon actually registered (``nvidia``, ``ascend`` ...).

.. code:: python

    host.get_fact(DockerRuntimes)
    {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []},
                  "runc": {"path": "runc", "args": []}},
     "default_runtime": "runc", "error": None}
"""

from __future__ import annotations

import json
import shlex
from typing import Any, TypedDict

from pyinfra.api.exceptions import FactProcessError
from pyinfra.api.facts import FactBase

DAEMON_JSON = "/etc/docker/daemon.json"


class DaemonJsonError(ValueError):
    """``daemon.json`` exists but is not a JSON object; dockerd would refuse to start."""


def parse_daemon_json(text: str, path: str = DAEMON_JSON) -> dict[str, Any]:
    """Parse daemon.json text; empty text is ``{}``.

    Raises :class:`DaemonJsonError` naming the line and column when the text is not JSON, or
    when the top level is not an object.
    """
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DaemonJsonError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(data, dict):
        raise DaemonJsonError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data


class DockerDaemonJson(FactBase[dict[str, Any]]):
    """The parsed Docker daemon configuration; ``{}`` when the file is absent or empty.

    A file that does not parse fails the fact (``FactProcessError`` with the line and column),
    so no role overwrites a hand-edited file it could not read.

    + path: the daemon.json to read

    .. code:: python

        {"default-runtime": "nvidia", "insecure-registries": ["blabla"],
         "runtimes": {"nvidia": {"args": [], "path": "/usr/bin/nvidia-container-runtime"}}}
    """

    def command(self, path: str = DAEMON_JSON) -> str:
        quoted = shlex.quote(path)
        return f"if [ -f {quoted} ]; then cat {quoted}; fi"

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        try:
            return parse_daemon_json("\n".join(output))
        except DaemonJsonError as exc:
            raise FactProcessError(str(exc)) from exc


class DockerRuntime(TypedDict):
    path: str | None
    args: list[str]


class DockerRuntimeInfo(TypedDict):
    runtimes: dict[str, DockerRuntime]
    default_runtime: str | None
    error: str | None


def _runtimes_from_json(data: dict[str, Any]) -> dict[str, DockerRuntime]:
    runtimes: dict[str, DockerRuntime] = {}
    for name, spec in data.items():
        spec = spec if isinstance(spec, dict) else {}
        args = spec.get("runtimeArgs") or spec.get("args") or []
        path = spec.get("path")
        runtimes[str(name)] = DockerRuntime(
            path=path if isinstance(path, str) else None,
            args=[str(arg) for arg in args] if isinstance(args, list) else [],
        )
    return runtimes


def parse_docker_runtimes(lines: list[str]) -> DockerRuntimeInfo:
    """Parse ``docker info --format '{{json .Runtimes}}{{"\\n"}}{{.DefaultRuntime}}'``.

    Also accepts plain ``docker info`` text (`` Runtimes: io.containerd.runc.v2 nvidia runc`` and
    `` Default Runtime: runc``), where runtime paths are unknown. When neither is found (daemon
    down, permission denied) ``error`` holds the first line of the output.
    """
    runtimes: dict[str, DockerRuntime] | None = None
    default: str | None = None
    for number, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                runtimes = _runtimes_from_json(data)
                following = [rest.strip() for rest in lines[number + 1 :] if rest.strip()]
                default = following[0] if following else None
                break
        elif line.startswith("Runtimes:"):
            names = line[len("Runtimes:") :].split()
            runtimes = {name: DockerRuntime(path=None, args=[]) for name in names}
        elif line.startswith("Default Runtime:"):
            default = line[len("Default Runtime:") :].strip() or None
    if runtimes is None:
        error = next((raw.strip() for raw in lines if raw.strip()), None)
        return DockerRuntimeInfo(runtimes={}, default_runtime=None, error=error)
    return DockerRuntimeInfo(runtimes=runtimes, default_runtime=default, error=None)


class DockerRuntimes(FactBase[DockerRuntimeInfo | None]):
    """The runtimes the running dockerd registered, and its default runtime.

    This is what ``docker run --runtime=...`` can use now: a runtime written to daemon.json only
    shows up here after dockerd reloads. ``error`` carries the client's message when the daemon
    cannot be reached.

    .. code:: python

        {"runtimes": {"io.containerd.runc.v2": {"path": "runc", "args": []},
                      "nvidia": {"path": "nvidia-container-runtime", "args": []},
                      "runc": {"path": "runc", "args": []}},
         "default_runtime": "runc", "error": None}
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self) -> str:
        return (
            "docker info --format '{{json .Runtimes}}{{\"\\n\"}}{{.DefaultRuntime}}' 2>&1 || true"
        )

    @staticmethod
    def default() -> DockerRuntimeInfo | None:
        return None

    def process(self, output: list[str]) -> DockerRuntimeInfo:
        return parse_docker_runtimes(output)
