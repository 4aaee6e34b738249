"""What the roles that run one container beside the engine share (Open WebUI, the gateway):
the image pinned by digest with the serving node's registry settings, and the container
converged by its spec-hash label, so a second run changes nothing and restarts nothing.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import weakref
from typing import Any

from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import server

from ironserve.engines.base import ContainerSpec
from ironserve.facts.engine import DockerImagePresent, EngineContainer
from ironserve.roles import FACT_TIMEOUT_S, run_of
from ironserve.roles.container_runtime.defaults import ContainerRuntimeData
from ironserve.serving import registry
from ironserve.serving.spec import LABEL_GROUP, LABEL_SPEC

# Per run: image pins, keyed by the image and the registry settings that resolve it (the
# serving node's own mirrors and insecure registries), so a node never gets a digest another
# node's settings found.
_PINS: weakref.WeakKeyDictionary[Any, dict[tuple[str, tuple[str, ...], tuple[str, ...]], str]] = (
    weakref.WeakKeyDictionary()
)


def pinned_image(image: str, key: str) -> str:
    """``image`` by digest, resolved with this host's registry settings (``key``: the data key
    that named it, for the error)."""
    runtime = ContainerRuntimeData.of(host)
    insecure = tuple(runtime.container_runtime_insecure_registries)
    mirrors = tuple(runtime.container_runtime_registry_mirrors)
    pins = _PINS.setdefault(run_of(state), {})
    wanted = (image, insecure, mirrors)
    if wanted not in pins:
        try:
            pins[wanted] = registry.resolve(image, insecure=insecure, mirrors=mirrors)
        except registry.ImageError as error:
            raise DeployError(f"{key}: {error}") from error
    return pins[wanted]


def spec_digest(spec: ContainerSpec, *revisions: str) -> str:
    """The label that says which spec a container runs: its argv and the revisions of the
    files it reads (a changed secret recreates it)."""
    return hashlib.sha256(json.dumps([spec.docker_run_argv(), *revisions]).encode()).hexdigest()[
        :16
    ]


def converge(spec: ContainerSpec, group: str, digest: str, what: str) -> bool:
    """Pull ``spec.image`` (pinned) when missing; create the container, replace it when its
    label differs from ``digest``, or start it when stopped. Whether it (re)starts it."""
    labels = ["--label", f"{LABEL_GROUP}={group}", "--label", f"{LABEL_SPEC}={digest}"]
    run = shlex.join(
        spec.model_copy(update={"run_args": [*labels, *spec.run_args]}).docker_run_argv()
    )
    if not host.get_fact(DockerImagePresent, ref=spec.image, _timeout=FACT_TIMEOUT_S):
        pull = shlex.join(["docker", "pull", "-q", spec.image])
        server.shell(name=f"Pull {what} by digest", commands=[pull])
    fact = host.get_fact(EngineContainer, container=spec.name, _timeout=FACT_TIMEOUT_S)
    name = shlex.quote(spec.name)
    if not fact.get("exists"):
        commands = [run]
    elif fact.get("spec") != digest:
        commands = [f"docker rm -f {name}", run]
    elif not fact.get("running"):
        commands = [f"docker start {name}"]
    else:
        return False
    server.shell(name=f"Start {what}", commands=commands)
    return True


def remove(name: str, what: str) -> None:
    """Remove the container ``name`` where it exists (a node that no longer runs it)."""
    if host.get_fact(EngineContainer, container=name, _timeout=FACT_TIMEOUT_S).get("exists"):
        server.shell(name=f"Remove {what}", commands=[shlex.join(["docker", "rm", "-f", name])])
