"""roles/image_cache: a registry in proxy mode on the group's head (serving/image_cache.py), its
storage a folder on the head's disk, pinned by digest and labelled with its spec hash like the
gateway, so a second run changes nothing and restarts nothing. It runs before roles/engine: the
engine's pull goes through it (the head first, which fills it, then the other nodes). A node
that is not its group's head, or a group that turned it off, loses the container.
"""

from __future__ import annotations

import shlex

from pyinfra.api.deploy import deploy
from pyinfra.context import host, state
from pyinfra.operations import files, server

from ironserve.engines.common import container_name
from ironserve.roles import containers, plan_of
from ironserve.roles.image_cache.defaults import DEFAULTS
from ironserve.roles.image_cache.group import cache_of
from ironserve.serving import image_cache

WHAT = "the image cache"
READY_TIMEOUT_S = 60


def ready_command(cache: image_cache.ImageCache) -> str:
    """Until the cache answers the registry API's version check (``GET /v2/``), at most a minute."""
    probe = shlex.join(["curl", "-fsS", "-o", "/dev/null", f"{cache.url}/v2/"])
    return (
        f"for i in $(seq {READY_TIMEOUT_S}); do {probe} && exit 0; sleep 1; done; "
        f"echo 'the image cache at {cache.url} did not answer in {READY_TIMEOUT_S} s' >&2; exit 1"
    )


@deploy("Image cache", data_defaults=DEFAULTS)
def deploy_image_cache() -> None:
    hp = plan_of(state, host)
    name = container_name(hp.plan.context, "image-cache")
    cache = cache_of(state, host)
    if cache is None or cache.head != host.name:
        containers.remove(name, WHAT)
        return
    image = containers.pinned_image(cache.image, "image_cache_image")
    run = image_cache.container(cache, name, image)
    files.directory(name="Image cache storage folder", path=cache.storage, mode="755")
    if containers.converge(run, hp.group.name, containers.spec_digest(run), WHAT):
        server.shell(name="Wait until the image cache answers", commands=[ready_command(cache)])
