"""Put a local image into the lab registry with its layers as ``docker save`` writes them.

``docker push`` gzips every layer before it sends it: 132 s of dockerd's CPU for the real
vLLM's 2.8 GB image on this 2-core machine (measured), more than any lab test spends, for a
link that is a local bridge. So the lab streams ``docker save`` straight into the registry API
(distribution's blob uploads: POST, PATCH, PUT with the digest) and writes a schema 2 manifest
whose layers are tars (``...rootfs.diff.tar``, gzip where a layer already is one, as a
containerd image store saves them); dockerd pulls either (it detects the compression). The
registry checks each blob's sha256 against the digest the upload names, and the image's
configuration (its ID) is the manifest's config, so a tag already holding it is left alone. An
image whose layers are all in the registry already (the lab's engine images differ in one ENV
line) has them mounted from the repository that holds them, and only its configuration is
taken from its save.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
TAR = "application/vnd.docker.image.rootfs.diff.tar"
TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CHUNK = 1 << 20
IN_MEMORY = 1 << 20  # the archive's JSON files and configurations; a layer this small too
TIMEOUT_S = 600.0


# (registry, layer digest) -> a repository holding it: pushes mount layers from there.
_HOLDERS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    gzip: bool


class _Chunks(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the docker SDK's ``Image.save()``)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._view:
            try:
                self._view = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._view))
        buffer[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


def _upload(http: httpx.Client, repository: str, chunks: Iterable[bytes]) -> Blob:
    """One blob through distribution's chunked upload; its digest, size and compression."""
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    started.raise_for_status()
    sha, seen, size = hashlib.sha256(), bytearray(), [0]

    def body() -> Iterator[bytes]:
        for chunk in chunks:
            sha.update(chunk)
            size[0] += len(chunk)
            if len(seen) < 2:
                seen.extend(chunk[:2])
            yield chunk

    sent = http.patch(
        started.headers["Location"],
        content=body(),
        headers={"Content-Type": "application/octet-stream"},
    )
    sent.raise_for_status()
    digest = f"sha256:{sha.hexdigest()}"
    location = sent.headers["Location"]
    done = http.put(f"{location}{'&' if '?' in location else '?'}digest={digest}")
    done.raise_for_status()
    return Blob(digest, size[0], seen[:2] == b"\x1f\x8b")


def _from_memory(data: bytes) -> Iterator[bytes]:
    for at in range(0, len(data), CHUNK):
        yield data[at : at + CHUNK]


def _member_chunks(archive: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    source = archive.extractfile(member)
    assert source is not None  # a regular file
    while chunk := source.read(CHUNK):
        yield chunk


def _size(http: httpx.Client, repository: str, digest: str) -> int | None:
    """The blob's size when ``repository`` holds it, after mounting it from a repository known to
    hold it where that one does not."""
    for attempt in range(2):
        answer = http.head(f"/v2/{repository}/blobs/{digest}")
        if answer.status_code == 200:
            return int(answer.headers["Content-Length"])
        holder = _HOLDERS.get((str(http.base_url), digest))
        if attempt or holder is None:
            return None
        mounted = http.post(
            f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": holder}
        )
        if mounted.status_code != 201:
            return None
    return None


def _configuration(archive: tarfile.TarFile, image_id: str) -> bytes | None:
    """The image's configuration from the archive (docker save's legacy layout names it
    ``<id>.json``; the layers before it in the archive are skipped, not hashed or sent)."""
    name = f"{image_id.removeprefix('sha256:')}.json"
    for member in archive:
        if member.isfile() and member.name == name:
            return b"".join(_member_chunks(archive, member))
    return None


def existing(http: httpx.Client, repository: str, tag: str, config: str) -> str | None:
    """The tag's manifest digest when it already names this configuration (image ID)."""
    answer = http.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST})
    if answer.status_code != 200:
        return None
    digest = answer.headers.get("Docker-Content-Digest")
    if answer.json().get("config", {}).get("digest") != config or not digest:
        return None
    return str(digest)


def push(client: Any, local: str, registry_url: str, repository: str, tag: str) -> str:
    """Put the local image ``local`` into ``registry_url`` as ``repository:tag``; the manifest's
    digest."""
    image = client.images.get(local)
    with httpx.Client(base_url=registry_url, timeout=TIMEOUT_S) as http:
        if known := existing(http, repository, tag, image.id):
            return known
        diff_ids = list(image.attrs["RootFS"]["Layers"])
        sizes = {digest: _size(http, repository, digest) for digest in diff_ids}
        if all(sizes.values()):
            saved = image.save(chunk_size=CHUNK)
            stream = io.BufferedReader(_Chunks(saved), CHUNK)
            with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as archive:
                config = _configuration(archive, image.id)
            saved.close()  # the rest of the archive is not read
            if config is not None:
                layers = [{"mediaType": TAR, "size": sizes[d], "digest": d} for d in diff_ids]
                return _put_manifest(http, repository, tag, local, image.id, config, layers)
        small: dict[str, bytes] = {}
        blobs: dict[str, Blob] = {}
        stream = io.BufferedReader(_Chunks(image.save(chunk_size=CHUNK)), CHUNK)
        with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                if member.size <= IN_MEMORY:
                    small[member.name] = b"".join(_member_chunks(archive, member))
                else:
                    blobs[member.name] = _upload(http, repository, _member_chunks(archive, member))
        (entry,) = json.loads(small["manifest.json"])
        layers = []
        for name in entry["Layers"]:
            blob = blobs.get(name) or _upload(http, repository, _from_memory(small[name]))
            layers.append(
                {
                    "mediaType": TAR_GZIP if blob.gzip else TAR,
                    "size": blob.size,
                    "digest": blob.digest,
                }
            )
        return _put_manifest(http, repository, tag, local, image.id, small[entry["Config"]], layers)


def _put_manifest(
    http: httpx.Client,
    repository: str,
    tag: str,
    local: str,
    image_id: str,
    config: bytes,
    layers: list[dict[str, Any]],
) -> str:
    """Upload the configuration, then the manifest naming it and the layers; its digest."""
    stored = _upload(http, repository, _from_memory(config))
    if stored.digest != image_id:
        raise RuntimeError(f"{local}: docker save wrote a configuration other than its ID")
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "size": stored.size, "digest": stored.digest},
        "layers": layers,
    }
    answer = http.put(
        f"/v2/{repository}/manifests/{tag}",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": MANIFEST},
    )
    answer.raise_for_status()
    for layer in layers:
        _HOLDERS[(str(http.base_url), layer["digest"])] = repository
    return str(answer.headers["Docker-Content-Digest"])
