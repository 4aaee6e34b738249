"""The group's pull-through image cache, pure: where it listens, what it proxies, how nodes reach
it and the container that runs it (roles/image_cache, roles/container_runtime and roles/engine
all read it from here).

The cache is a registry in proxy mode (distribution's ``proxy.remoteurl``) on the group's head:
it fetches a blob from its one upstream the first time a node asks, keeps it on the head's disk
and serves every later request itself, so the engine image crosses the site link once.

How a node's pull reaches it depends on where the engine image lives, because dockerd's
``registry-mirrors`` applies to Docker Hub references only:

- a Docker Hub image (``vllm/vllm-openai:v0.11.0``): the cache is every node's Docker Hub mirror
  and the image keeps its name; dockerd asks the mirror first (and falls back to Docker Hub when
  the mirror does not answer);
- any other registry (``nvcr.io/...``, a site registry, the lab's): nodes pull the cache by its
  address, ``<head>:<port>/<repository>@<digest>``, the digest resolved from the upstream as
  always; a cache that does not answer fails the pull (no silent fallback).

Either way the cache speaks plain HTTP on the cluster network (the firewall lets only the
group's nodes reach it), so every node lists it in ``insecure-registries``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ironserve.engines.base import SERVICE_RUN_ARGS, ContainerSpec
from ironserve.serving import registry

STORAGE_IN_CONTAINER = "/var/lib/registry"


@dataclass(frozen=True)
class ImageCache:
    head: str  # the inventory name of the node running it
    address: str  # the head's address on the cluster network
    port: int
    storage: str  # the folder on the head holding the cached blobs
    upstream: str  # the registry it proxies (base URL)
    image: str  # the registry image the cache runs (as the operator named it)

    @property
    def registry(self) -> str:
        """``host:port``, as dockerd and image references name it."""
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.registry}"

    @property
    def mirrors_docker_hub(self) -> bool:
        return self.upstream.rstrip("/") == registry.DOCKER_HUB_API


def upstream_of(image: str, insecure: list[str] | tuple[str, ...]) -> str:
    """The registry the engine image comes from, as a base URL: Docker Hub's API for a Docker Hub
    name, else its registry over HTTPS (HTTP when listed insecure or on loopback)."""
    return registry.endpoints(registry.parse_image(image), insecure, [])[0]


def daemon_settings(cache: ImageCache) -> dict[str, Any]:
    """What every node of the group adds to daemon.json (merged with the rest, lists by item)."""
    settings: dict[str, Any] = {"insecure-registries": [cache.registry]}
    if cache.mirrors_docker_hub:
        settings["registry-mirrors"] = [cache.url]
    return settings


def node_reference(pinned: str, cache: ImageCache | None) -> str:
    """The reference nodes pull and run for the pinned engine image ``name@sha256:...``: through
    the cache by its address unless the image is on Docker Hub behind the cache as mirror."""
    if cache is None or cache.mirrors_docker_hub:
        return pinned
    ref = registry.parse_image(pinned)
    if ref.digest is None:
        raise ValueError(f"{pinned!r} is not pinned by digest")
    return f"{cache.registry}/{ref.repository}@{ref.digest}"


def container(cache: ImageCache, name: str, image: str) -> ContainerSpec:
    """The registry in proxy mode on the head's address (host network), its storage the head's
    folder; configured by distribution's ``REGISTRY_*`` variables, which override whatever
    configuration file the image ships (Docker's ``registry:2``, Debian's docker-registry)."""
    return ContainerSpec(
        name=name,
        image=image,
        run_args=[
            *SERVICE_RUN_ARGS,
            "-v",
            f"{cache.storage}:{STORAGE_IN_CONTAINER}",
        ],
        env={
            "REGISTRY_HTTP_ADDR": cache.registry,
            "REGISTRY_PROXY_REMOTEURL": cache.upstream,
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": STORAGE_IN_CONTAINER,
        },
        command=[],
    )
