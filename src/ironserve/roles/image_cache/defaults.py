"""Data keys of roles/image_cache (role-prefixed). The group's head runs the cache: its values
count for the whole group (validation holds them equal on every node of a group)."""

from ironserve.config.values import Flag, Image, NodePath, Port, Url
from ironserve.deploy.role_data import RoleData


class ImageCacheData(RoleData):
    # A pull-through registry on the group's head, so the engine image crosses the site link once.
    image_cache_enabled: Flag = False
    image_cache_port: Port = 5050
    # On the head's disk: the cached layers (an engine image is 10-20 GB).
    image_cache_dir: NodePath = "/var/lib/ironserve/image-cache"
    # Distribution's registry (proxy mode); pinned by digest at deploy time.
    image_cache_image: Image = "registry:2.8.3"
    # The registry it proxies; None: the engine image's own (Docker Hub's API for a Docker Hub
    # name, HTTP for a registry in container_runtime_insecure_registries).
    image_cache_upstream: Url | None = None


DEFAULTS = ImageCacheData.defaults()
