"""roles/gateway: nginx on the group's API node, on the Plan's public port, in front of the
engine on the node's loopback (Plan.gateway; serving/gateway.py renders it). It runs before the
engine, so the readiness wait and the proven completion already pass through it. Its
configuration holds the key: a 0600 file, written through stdin. Pinned by digest and labelled
with its spec hash: a second run changes nothing and restarts nothing. A node that is no longer
the API node (or a group that turned ``serving_gateway`` off) loses its gateway container.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import files

from ironserve.engines.base import NODE_STATE_DIR
from ironserve.engines.common import container_name
from ironserve.operations import secrets
from ironserve.roles import containers, plan_of
from ironserve.roles.engine.decide import group_of
from ironserve.roles.gateway.defaults import DEFAULTS, GatewayData
from ironserve.roles.peers import group_peers
from ironserve.serving import apikey, gateway

WHAT = "the API gateway"


@deploy("Gateway", data_defaults=DEFAULTS)
def deploy_gateway() -> None:
    hp = plan_of(state, host)
    spec = hp.plan.gateway
    if spec is None or spec.node != host.name:
        containers.remove(container_name(hp.plan.context, "gateway"), WHAT)
        return
    group = group_of(state, host)
    try:
        key = apikey.read_key(group.key_file)  # the Plan's key file (decide.py: ensure_plan_key)
        config = gateway.config_text(hp.group.name, spec, key, group_peers(state, host))
    except apikey.ApiKeyError as error:
        raise DeployError(f"{host.name}: serving_api_key_file: {error}") from error
    image = containers.pinned_image(GatewayData.of(host).gateway_image, "gateway_image")
    run = gateway.container(spec, image)
    files.directory(
        name="Engine state folder (0700)", path=f"{NODE_STATE_DIR}/{hp.group.name}", mode="700"
    )
    secrets.secret_file(
        name="Gateway configuration with the API key (0600)", path=spec.config_file, content=config
    )
    digest = containers.spec_digest(run, apikey.secrets_revision(hp.group.name, config))
    containers.converge(run, hp.group.name, digest, WHAT)
