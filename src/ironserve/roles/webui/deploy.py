"""roles/webui: when ``webui_enabled``, one Open WebUI container on the group's serving node,
pointed at the endpoint with the group's API key, its admin created from the password in
``webui_admin_password_file`` (0600, required: there is never a default password). Pinned by
digest and labelled with its spec hash like the engine's containers: a re-run changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import files

from ironserve.engines.base import NODE_STATE_DIR
from ironserve.operations import secrets
from ironserve.roles import containers, plan_of
from ironserve.roles.engine.decide import group_of
from ironserve.roles.webui import render
from ironserve.roles.webui.defaults import DEFAULTS, WebuiData
from ironserve.serving import apikey


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
    image = containers.pinned_image(data.webui_image, "webui_image")
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
    files.directory(
        name="Engine state folder (0700)", path=f"{NODE_STATE_DIR}/{hp.group.name}", mode="700"
    )
    secrets.secret_file(
        name="Open WebUI env file with its secrets (0600)",
        path=render.env_file_path(hp.group.name),
        content=env,
    )
    digest = containers.spec_digest(spec, apikey.secrets_revision(hp.group.name, env))
    containers.converge(spec, hp.group.name, digest, "Open WebUI")
