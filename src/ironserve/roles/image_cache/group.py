"""The image cache of a host's serving group, from the group head's data and the Plan (read by
roles/image_cache, roles/container_runtime on every node and roles/engine's decision)."""

from __future__ import annotations

from typing import Any

from ironserve.roles import plan_of
from ironserve.roles.container_runtime.defaults import ContainerRuntimeData
from ironserve.roles.image_cache.defaults import ImageCacheData
from ironserve.serving.image_cache import ImageCache, upstream_of


def cache_of(state: Any, host: Any) -> ImageCache | None:
    """``host``'s group's cache, or None when the group's head does not run one."""
    hp = plan_of(state, host)
    head = state.inventory.get_host(hp.group.head.name)
    data = ImageCacheData.of(head)
    if not data.image_cache_enabled:
        return None
    insecure = ContainerRuntimeData.of(head).container_runtime_insecure_registries
    return ImageCache(
        head=head.name,
        address=str(hp.group.head.node.ip),
        port=data.image_cache_port,
        storage=data.image_cache_dir,
        upstream=data.image_cache_upstream or upstream_of(hp.plan.context.image, insecure),
        image=data.image_cache_image,
    )
