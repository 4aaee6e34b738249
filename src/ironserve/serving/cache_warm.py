"""Fill the group's image cache with one image before any node pulls it (runs on the head; Python's
standard library only, like weights/node_pull.py).

    python3 cache_warm.py http://<head>:<port> <repository> sha256:<digest>

Why not a ``docker pull`` on the head first: a registry in proxy mode fetches a blob that another
request is still fetching from upstream once more for that request, and the head's dockerd asks
only for the layers it lacks (the cache's own image shares base layers with engine images), so
parallel pulls would still fetch those twice. This walks the manifest (an index: this machine's
platform) and reads every blob through the cache once, one after the other; blobs the cache
holds are served from its disk. Prints the bytes read.
"""

from __future__ import annotations

import json
import platform
import sys
import urllib.request
from typing import Any

ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
CHUNK = 1 << 20
TIMEOUT_S = 600


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        return bytes(answer.read())


def _drain(url: str) -> int:
    read = 0
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
        while chunk := answer.read(CHUNK):
            read += len(chunk)
    return read


def platform_manifest(index: dict[str, Any], arch: str) -> str:
    """The digest of ``arch``'s Linux manifest in an image index."""
    for entry in index.get("manifests") or []:
        wanted = entry.get("platform") or {}
        if wanted.get("os") == "linux" and wanted.get("architecture") == arch:
            return str(entry["digest"])
    raise SystemExit(f"the image has no linux/{arch} manifest")


def blobs(manifest: dict[str, Any]) -> list[str]:
    """The config's and every layer's digest."""
    config = manifest.get("config") or {}
    layers = manifest.get("layers") or []
    return [str(config["digest"])] + [str(layer["digest"]) for layer in layers]


def warm(base: str, repository: str, digest: str) -> int:
    manifest = json.loads(_get(f"{base}/v2/{repository}/manifests/{digest}", ACCEPT))
    if "manifests" in manifest:
        arch = ARCH.get(platform.machine(), platform.machine())
        chosen = platform_manifest(manifest, arch)
        manifest = json.loads(_get(f"{base}/v2/{repository}/manifests/{chosen}", ACCEPT))
    return sum(_drain(f"{base}/v2/{repository}/blobs/{blob}") for blob in blobs(manifest))


def main(argv: list[str]) -> int:
    base, repository, digest = argv
    print(f"read {warm(base.rstrip('/'), repository, digest)} bytes through the cache")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
