"""roles/webui: when ``webui_enabled``, one Open WebUI container on the group's serving node,
pointed at the endpoint with the group's API key, its admin created from the password in
``webui_admin_password_file`` (0600, required: there is never a default password). Pinned by
digest and labelled with its spec hash like the engine's containers: a re-run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import weakref
from pathlib import Path
from typing import Any

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import files, server

from ironserve.engines.base import NODE_STATE_DIR
from ironserve.facts.engine import DockerImagePresent, EngineContainer
from ironserve.operations import secrets
from ironserve.roles import plan_of, run_of
from ironserve.roles.container_runtime.defaults import ContainerRuntimeData
from ironserve.roles.engine.decide import group_of
from ironserve.roles.webui import render
from ironserve.roles.webui.defaults import DEFAULTS, WebuiData
from ironserve.serving import apikey, registry
from ironserve.serving.spec import LABEL_GROUP, LABEL_SPEC

# Per run: image pins, keyed by the image and the registry settings that resolve it (the
# serving node's own mirrors and insecure registries), so a node never gets a digest another
# node's settings found.
_PINS: weakref.WeakKeyDictionary[Any, dict[tuple[str, tuple[str, ...], tuple[str, ...]], str]] = (
    weakref.WeakKeyDictionary()
)


def _password() -> str:
    path = WebuiData.of(host).webui_admin_password_file
    if path is None:
        raise DeployError(
            f"{host.name}: webui_admin_password_file must be given when webui_enabled is set "
            "(a 0600 file holding the Open WebUI admin password; there is no default)"
        )
    try:
        return apikey.read_key(Path(str(path)).expanduser(), "the admin password")
    except apikey.ApiKeyError as error:
        raise DeployError(f"{host.name}: webui_admin_password_file: {error}") from error


def _pinned(image: str) -> str:
    """``image`` by digest, resolved with this host's registry settings."""
    runtime = ContainerRuntimeData.of(host)
    insecure = tuple(runtime.container_runtime_insecure_registries)
    mirrors = tuple(runtime.container_runtime_registry_mirrors)
    pins = _PINS.setdefault(run_of(state), {})
    key = (image, insecure, mirrors)
    if key not in pins:
        try:
            pins[key] = registry.resolve(image, insecure=insecure, mirrors=mirrors)
        except registry.ImageError as error:
            raise DeployError(f"webui_image: {error}") from error
    return pins[key]


@deploy("Open WebUI", data_defaults=DEFAULTS)
def deploy_webui() -> None:
    data = WebuiData.of(host)
    if not data.webui_enabled:
        return
    hp = plan_of(state, host)
    if not hp.launch.serves_api:
        return
    password = _password()
    group = group_of(state, host)
    ctx = hp.plan.context
    key = apikey.read_key(group.key_file)  # the Plan's key file (decide.py: ensure_plan_key)
    image = _pinned(data.webui_image)
    spec = render.container(
        hp.group.name,
        image,
        hp.plan.endpoint.url,
        data.webui_port,
        data.webui_admin_email,
        data.webui_admin_name,
        ctx.served_name,
    )
    env = render.env_file(password, key, hp.group.name)
    digest = hashlib.sha256(
        json.dumps([spec.docker_run_argv(), apikey.secrets_revision(hp.group.name, env)]).encode()
    ).hexdigest()[:16]
    labels = ["--label", f"{LABEL_GROUP}={hp.group.name}", "--label", f"{LABEL_SPEC}={digest}"]
    run = spec.model_copy(update={"run_args": [*labels, *spec.run_args]}).docker_run_argv()
    files.directory(
        name="Engine state folder (0700)", path=f"{NODE_STATE_DIR}/{hp.group.name}", mode="700"
    )
    secrets.secret_file(
        name="Open WebUI env file with its secrets (0600)",
        path=render.env_file_path(hp.group.name),
        content=env,
    )
    if not host.get_fact(DockerImagePresent, ref=image):
        server.shell(
            name="Pull Open WebUI by digest", commands=[shlex.join(["docker", "pull", "-q", image])]
        )
    fact = host.get_fact(EngineContainer, container=spec.name)
    name = shlex.quote(spec.name)
    if not fact.get("exists"):
        server.shell(name="Start Open WebUI", commands=[shlex.join(run)])
    elif fact.get("spec") != digest:
        server.shell(name="Start Open WebUI", commands=[f"docker rm -f {name}", shlex.join(run)])
    elif not fact.get("running"):
        server.shell(name="Start Open WebUI", commands=[f"docker start {name}"])
