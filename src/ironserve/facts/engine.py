"""Engine facts: a serving container as ``docker inspect`` shows it, the serve process inside it,
the Ray cluster its head sees, and whether an image (by digest) is on the node.

.. code:: python

    host.get_fact(EngineContainer, container="ironserve-default-ray", serve=True, ray=True)
    {"docker": True, "exists": True, "running": True, "status": "running",
     "spec": "3f2a...", "group": "default", "started_at": "2026-11-24T05:01:02.1Z",
     "restart_count": 0, "image": "sha256:...", "serve_spec": "9c1e..." | None,
     "ray_status": "======== Autoscaler status: ..." | None}

Every command exits 0: a node without Docker yet (site.py gathers facts before provisioning
runs) reads as "no container", which is what it is.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api.facts import FactBase

from ironserve.serving.spec import LABEL_GROUP, LABEL_SPEC, serve_probe

_SECTIONS = ("@@inspect", "@@serve", "@@ray")
# Only what the role reads: never the whole `docker inspect`, whose Config.Env holds what the
# env file gave the container (the API key), so a fact's output never carries a secret.
INSPECT_FORMAT = (
    '{"Labels": {{json .Config.Labels}}, "State": {{json .State}}, '
    '"RestartCount": {{.RestartCount}}, "Image": {{json .Image}}}'
)


def _sections(output: list[str]) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output:
        if line.strip() in _SECTIONS or line.strip() == "@@no-docker":
            current = parts.setdefault(line.strip(), [])
            continue
        if current is not None:
            current.append(line)
    return parts


def parse_container(output: list[str]) -> dict[str, Any]:
    parts = _sections(output)
    doc: dict[str, Any] = {
        "docker": "@@no-docker" not in parts,
        "exists": False,
        "running": False,
        "status": "absent",
        "spec": None,
        "group": None,
        "started_at": None,
        "restart_count": 0,
        "image": None,
        "serve_spec": None,
        "ray_status": None,
    }
    text = "\n".join(parts.get("@@inspect", [])).strip()
    item = json.JSONDecoder().raw_decode(text)[0] if text.startswith("{") else {}
    if item.get("State"):
        labels = item.get("Labels") or {}
        state = item["State"]
        doc.update(
            exists=True,
            running=bool(state.get("Running")),
            status=str(state.get("Status", "unknown")),
            spec=labels.get(LABEL_SPEC),
            group=labels.get(LABEL_GROUP),
            started_at=state.get("StartedAt"),
            restart_count=int(item.get("RestartCount", 0)),
            image=item.get("Image"),
        )
    serve = [line.strip() for line in parts.get("@@serve", []) if line.strip()]
    doc["serve_spec"] = serve[-1] if serve else None
    if "@@ray" in parts:
        doc["ray_status"] = "\n".join(parts["@@ray"])
    return doc


def container_command(name: str, serve: bool = False, ray: bool = False) -> str:
    q = shlex.quote(name)
    lines = [
        "command -v docker >/dev/null 2>&1 || { echo @@no-docker; exit 0; }",
        "echo @@inspect",
        f"docker inspect --type container --format {shlex.quote(INSPECT_FORMAT)} {q} 2>/dev/null"
        " || echo '{}'",
    ]
    running = f'[ "$(docker inspect -f {{{{.State.Running}}}} {q} 2>/dev/null)" = true ]'
    if serve:
        probe = shlex.quote(serve_probe())
        lines.append(f"echo @@serve; if {running}; then docker exec {q} sh -c {probe}; fi")
    if ray:
        lines.append(
            f"echo @@ray; if {running}; then timeout 30 docker exec {q} ray status 2>&1; fi"
        )
    return "; ".join(lines) + "; true"


class EngineContainer(FactBase[dict[str, Any]]):
    """One engine container by name (see the module docstring for the shape).

    + container: the container's name (the Plan's)
    + serve: also probe the serve process started with ``docker exec`` (Ray heads)
    + ray: also read ``ray status`` inside it (Ray heads)
    """

    def command(self, container: str, serve: bool = False, ray: bool = False) -> str:
        return container_command(container, serve=serve, ray=ray)

    @staticmethod
    def default() -> dict[str, Any]:
        return parse_container(["@@no-docker"])

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_container(output)


class DockerImagePresent(FactBase[bool]):
    """Whether the image (``name@sha256:...``) is on the node already.

    + ref: the pinned reference
    """

    def command(self, ref: str) -> str:
        q = shlex.quote(ref)
        return f"docker image inspect --format '{{{{.Id}}}}' {q} 2>/dev/null || true"

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return any(line.strip().startswith("sha256:") for line in output)


class IronserveContainers(FactBase[list[str]]):
    """Names of every container of a serving group on the node: labelled with the group by
    ironserve, or carrying one of the group's container names (e.g. started by hand from
    `ironserve render`).

    + group: the serving group
    + names: the group's container names (exact)
    """

    def command(self, group: str, names: tuple[str, ...] = ()) -> str:
        filters = [f"label={LABEL_GROUP}={group}", *(f"name=^/?{n}$" for n in names)]
        listings = "; ".join(
            f"docker ps -a --filter {shlex.quote(f)} --format '{{{{.Names}}}}'" for f in filters
        )
        return f"command -v docker >/dev/null 2>&1 || exit 0; {{ {listings}; }} | sort -u"

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return sorted({line.strip() for line in output if line.strip()})


def system_health_command(ports: tuple[int, ...]) -> str:
    probes = "; ".join(
        f"printf '%s ' {int(p)}; curl -s -o /dev/null -m 5 -w '%{{http_code}}\\n' "
        f"http://127.0.0.1:{int(p)}/health || echo 000"
        for p in ports
    )
    return f"command -v curl >/dev/null 2>&1 || {{ echo @@no-curl; exit 0; }}; {probes}; true"


def parse_system_health(output: list[str]) -> dict[int, int] | None:
    """``{port: HTTP status}`` (0: no answer); None when the node has no curl to ask with."""
    if any(line.strip() == "@@no-curl" for line in output):
        return None
    found: dict[int, int] = {}
    for line in output:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            found[int(parts[0])] = int(parts[1])
    return found


class DynamoSystemHealth(FactBase[dict[int, int] | None]):
    """Each Dynamo worker's system server (``DYN_SYSTEM_PORT``) asked for ``/health`` on the
    node's loopback: ``{port: HTTP status}``, 0 where nothing answered; None without curl.

    + ports: the workers' system ports on this node
    """

    def command(self, ports: tuple[int, ...]) -> str:
        return system_health_command(ports)

    @staticmethod
    def default() -> dict[int, int] | None:
        return None

    def process(self, output: list[str]) -> dict[int, int] | None:
        return parse_system_health(output)


# What a worker's metrics check reads: Dynamo's own per-worker families and the engine's (vLLM,
# SGLang) that a dynamo.<backend> worker re-exports on its system port. Histogram buckets are
# left on the node: a real vLLM worker's page is mostly buckets, and no check reads them.
WORKER_METRIC_PREFIXES = ("dynamo_component_", "vllm:", "sglang:")


def worker_metrics_command(ports: tuple[int, ...]) -> str:
    keep = "|".join(p.replace(":", "[:]") for p in WORKER_METRIC_PREFIXES)
    reads = "; ".join(
        f"echo '@@port {int(p)}'; curl -s -m 5 -w '\\n@@code %{{http_code}}\\n' "
        f"http://127.0.0.1:{int(p)}/metrics | grep -E '^(@@code |{keep})' | grep -v '_bucket{{'"
        for p in ports
    )
    return f"command -v curl >/dev/null 2>&1 || {{ echo @@no-curl; exit 0; }}; {reads}; true"


def parse_worker_metrics(output: list[str]) -> dict[int, tuple[int, str]] | None:
    """``{port: (HTTP status, the kept sample lines)}`` (status 0: no answer); None when the
    node has no curl to ask with."""
    if any(line.strip() == "@@no-curl" for line in output):
        return None
    found: dict[int, tuple[int, str]] = {}
    port: int | None = None
    lines: list[str] = []
    for line in output:
        head = line.split()
        if len(head) == 2 and head[0] == "@@port" and head[1].isdigit():
            port, lines = int(head[1]), []
        elif len(head) == 2 and head[0] == "@@code" and port is not None:
            found[port] = (int(head[1]) if head[1].isdigit() else 0, "\n".join(lines))
        elif port is not None:
            lines.append(line)
    return found


class DynamoWorkerMetrics(FactBase[dict[int, tuple[int, str]] | None]):
    """Each Dynamo worker's system server (``DYN_SYSTEM_PORT``) asked for ``/metrics`` on the
    node's loopback: ``{port: (HTTP status, sample lines)}``, the lines Dynamo's
    ``dynamo_component_*`` and the engine's ``vllm:`` / ``sglang:`` samples (no histogram
    buckets); None without curl.

    + ports: the system ports of the node's workers to read
    """

    def command(self, ports: tuple[int, ...]) -> str:
        return worker_metrics_command(ports)

    @staticmethod
    def default() -> dict[int, tuple[int, str]] | None:
        return None

    def process(self, output: list[str]) -> dict[int, tuple[int, str]] | None:
        return parse_worker_metrics(output)
