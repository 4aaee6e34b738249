"""The lab's container registry: Debian's ``docker-registry`` (distribution v2) on the lab network.

Started by ``lab up`` at the network's 4th address (``<ip>:5000``, what nodes pull from; plain
HTTP, so provisioning lists it in ``insecure-registries``), its port also published on
127.0.0.1 for this machine's dockerd to push to (127.0.0.0/8 is insecure by default). Its
storage is a folder that outlives labs, so a second lab pushes nothing new.

Then the lab engine images go in under the real repository names, so the builders' image names
map 1:1: ``<ip>:5000/vllm/vllm-openai:v0.11.0``, ``<ip>:5000/lmsysorg/sglang:v0.5.4``; and this
registry's own image as ``ironserve-lab/registry:v2.8``, the image roles/image_cache runs on a
group's head in the lab (a pull-through cache of this registry).

Its access log is on (stdout, ``docker logs``): one line per request with the bytes sent, which
:func:`served_bytes` sums per repository, the lab's byte counter of what left the "upstream".
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from ironserve.lab import dynamo_image, gateway_image, registry_push, vllm_image
from ironserve.lab import engine_image as ei
from ironserve.lab import images as img
from ironserve.lab.waits import wait_http_ok

REPO = "ironserve-lab-registry"
PORT = 5000
STORAGE = "/var/lib/docker-registry"
CACHE_REPOSITORY = "ironserve-lab/registry"
CACHE_VERSION = "2.8"  # bookworm's docker-registry (distribution 2.8)
SKIP_ENV = "IRONSERVE_LAB_ENGINE_IMAGES"  # "0": start the registry but push no engine image
STORAGE_ENV = "IRONSERVE_LAB_REGISTRY_DIR"

CONFIG = f"""# ironserve lab registry (distribution v2)
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {STORAGE}
  delete:
    enabled: true
http:
  addr: 0.0.0.0:{PORT}
"""

# policy-rc.d: the package's postinst must not try to start a service inside the build.
DOCKERFILE = """FROM {base}
ENV DEBIAN_FRONTEND=noninteractive
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \\
 && apt-get -o Acquire::Check-Valid-Until=false update -qq \\
 && apt-get install -y -qq --no-install-recommends docker-registry >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d
COPY config.yml /etc/docker/registry/ironserve-lab.yml
EXPOSE 5000
ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/ironserve-lab.yml"]
"""


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def storage_dir() -> Path:
    env = os.environ.get(STORAGE_ENV)
    return Path(env) if env else ei.cache_dir() / "registry"


def image_tag(base: str) -> str:
    return f"{REPO}:{img._digest(base, DOCKERFILE, CONFIG)}"


def ensure_image(client: Any, base: str) -> str:
    tag = image_tag(base)
    if img.exists(client, tag):
        return tag
    with img.build_lock():
        if not img.exists(client, tag):
            _build_image(client, base, tag)
    return tag


def _build_image(client: Any, base: str, tag: str) -> None:
    buffer = img.tar_context(
        {
            "Dockerfile": (DOCKERFILE.format(base=base).encode(), 0o644),
            "config.yml": (CONFIG.encode(), 0o644),
        }
    )
    _log(f"building {tag} (Debian's docker-registry)")
    for chunk in client.api.build(
        fileobj=buffer,
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        pull=False,
        labels={img.IMAGE_LABEL: "registry"},
        decode=True,
    ):
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error']}")


def wait_ready(host_url: str, timeout: float = 30.0) -> None:
    """Until ``GET /v2/`` answers 200 (the registry API's version check)."""
    wait_http_ok(f"{host_url}/v2/", "the lab registry", timeout)


def start(
    client: Any,
    name: str,
    base: str,
    network: str,
    address: str,
    host_port: int,
    labels: dict[str, str],
) -> str:
    """Start the registry container; its id."""
    tag = ensure_image(client, base)
    storage = storage_dir()
    storage.mkdir(parents=True, exist_ok=True)
    api = client.api
    container = api.create_container(
        tag,
        hostname="registry",
        name=name,
        labels=labels,
        ports=[PORT],
        # The access log (off in the image's configuration): the lab's registry byte counter.
        environment={"REGISTRY_LOG_ACCESSLOG_DISABLED": "false"},
        host_config=api.create_host_config(
            binds={str(storage): {"bind": STORAGE, "mode": "rw"}},
            port_bindings={PORT: ("127.0.0.1", host_port)},
            restart_policy={"Name": "unless-stopped"},
        ),
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(ipv4_address=address, aliases=["registry"])}
        ),
    )
    api.start(container["Id"])
    return str(container["Id"])


# Gorilla's combined log format, as distribution writes it: "GET /v2/<repo>/blobs/<digest> ..."
# <status> <bytes>.
_ACCESS = re.compile(
    r'"GET /v2/(?P<repo>[^ ]+)/(?P<kind>blobs|manifests)/[^ ]+ HTTP/[0-9.]+" '
    r"(?P<status>[0-9]{3}) (?P<bytes>[0-9]+|-)"
)


def served_bytes(log: str, repository: str, kind: str = "blobs") -> int:
    """Bytes the registry sent for ``repository``'s blobs (or manifests) in ``log`` (its access
    log: ``docker logs`` of the registry container), successful GETs only."""
    total = 0
    for match in _ACCESS.finditer(log):
        wanted = match["repo"] == repository and match["kind"] == kind
        if wanted and match["status"].startswith("2") and match["bytes"] != "-":
            total += int(match["bytes"])
    return total


def cache_reference() -> str:
    """The lab's image cache image under the lab registry (the lab inventory's
    ``image_cache_image``)."""
    return f"{CACHE_REPOSITORY}:v{CACHE_VERSION}"


def push(client: Any, image: ei.EngineImage, host_port: int) -> str:
    """Put one engine image in through 127.0.0.1:<port>, its layers uncompressed
    (lab/registry_push.py); its manifest digest."""
    url = f"http://127.0.0.1:{host_port}"
    return registry_push.push(client, image.local, url, image.repository, image.tag)


def _engine_images(
    client: Any, base: str, dynamo: bool, real_vllm: bool = True
) -> list[ei.EngineImage]:
    """What a lab serves: NVIDIA Dynamo (lab/dynamo_image.py: the runtime, etcd, NATS) for a
    Dynamo lab, else every engine image a lab offers (the real vLLM and the stand-ins)."""
    if dynamo:
        return dynamo_image.ensure_all(client, base)
    engine = ei.ensure_engine(client, base)
    images = []
    for kind, version in ei.wanted_versions():
        if (kind, version) == ("vllm", vllm_image.VERSION):  # the real one
            if not real_vllm:
                continue
            local = vllm_image.ensure(client, base)
            image = ei.EngineImage(kind, version, local, ei.REPOSITORIES[kind])
        else:
            image = ei.ensure_tagged(client, engine, kind, version)
        images.append(image)
    return images


def publish_engines(
    client: Any,
    base: str,
    address: str,
    host_port: int,
    dynamo: bool = False,
    real_vllm: bool = True,
) -> dict[str, str]:
    """Build (cached) and push every engine image the lab serves (``dynamo``: Dynamo's, and no
    other engine's; ``real_vllm=False``: the stand-ins only), the gateway's nginx and the image
    cache's registry; {node-side reference: digest}."""
    if os.environ.get(SKIP_ENV, "1") == "0":
        _log(f"{SKIP_ENV}=0: no engine image pushed")
        return {}
    started = time.monotonic()
    images = _engine_images(client, base, dynamo, real_vllm=real_vllm)
    built = time.monotonic()
    published: dict[str, str] = {}
    for image in images:
        # The storage is shared by every lab's registry: one push at a time, so a second lab
        # finds the image there instead of reading 2.8 GB again.
        with img.build_lock("push"):
            published[f"{address}:{PORT}/{image.reference}"] = push(client, image, host_port)
    gateway = gateway_image.ensure(client, base)  # roles/gateway's nginx, from Debian
    with img.build_lock("push"):
        published[f"{address}:{PORT}/{gateway.reference}"] = push(client, gateway, host_port)
    # roles/image_cache's registry: this one's own image (Debian's docker-registry).
    cache = ei.EngineImage(
        "image-cache", CACHE_VERSION, ensure_image(client, base), CACHE_REPOSITORY
    )
    with img.build_lock("push"):
        published[f"{address}:{PORT}/{cache.reference}"] = push(client, cache, host_port)
    _log(
        f"engine images: built/checked in {built - started:.1f}s, pushed in "
        f"{time.monotonic() - built:.1f}s: {', '.join(published)}"
    )
    return published
