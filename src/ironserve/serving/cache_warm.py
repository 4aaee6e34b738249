"""Fill the group's image cache with one image before any node pulls it: on the head, each blob
of the image read once from the upstream registry, checked against its sha256 and placed in the
cache's storage (Python's standard library only, like weights/node_pull.py).

    python3 cache_warm.py <upstream URL> <repository> sha256:<manifest digest> <cache folder>

Why not let the proxy fetch: distribution 2.8 (Debian's docker-registry, Docker's registry:2),
on a blob it lacks, streams it from upstream to the client and fetches it from upstream a second
time in the background to store it, a store cancelled when the client's request ends; requests
for a blob still being fetched go to upstream once more each (distribution pull requests 3428,
4664). Measured on the lab: a 227 MB image read once through a cold cache from the head, then
pulled by three nodes, made the upstream send 3.65 images. So the head fills the cache itself,
through the registry's storage layout (``docker/registry/v2/blobs/sha256/<ab>/<hex>/data`` and
the repository's ``_layers/sha256/<hex>/link``, distribution's filesystem driver since 2015): a
blob already there is not read again; every other one crosses the site link exactly once and
lands in its final path only once its sha256 matches. The proxy then serves the whole image from
its disk and fetches only the manifest itself. Prints the bytes read from upstream.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
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
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
CHUNK = 1 << 20
TIMEOUT_S = 600
REDIRECTS = 5


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand: a blob's redirect (a CDN) must not get the token."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Upstream:
    """The upstream registry: anonymous Bearer tokens when it asks (Docker Hub), redirects."""

    def __init__(self, base: str, repository: str) -> None:
        self.base, self.repository = base.rstrip("/"), repository
        self.token: str | None = None

    def _token(self, challenge: str) -> str | None:
        scheme, _, params = challenge.partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if scheme.lower() != "bearer" or not fields.get("realm"):
            return None
        query = {
            "service": fields.get("service", ""),
            "scope": f"repository:{self.repository}:pull",
        }
        url = f"{fields['realm']}?{urllib.parse.urlencode({k: v for k, v in query.items() if v})}"
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            doc = json.loads(answer.read())
        token = doc.get("token") or doc.get("access_token")
        return str(token) if token else None

    def open(self, path: str, accept: str | None = None) -> Any:
        url, authorised = f"{self.base}/v2/{self.repository}/{path}", True
        for _ in range(REDIRECTS):
            headers = {"Accept": accept} if accept else {}
            if self.token and authorised:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                return _OPENER.open(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
            except urllib.error.HTTPError as error:
                if error.code == 401 and authorised and self.token is None:
                    self.token = self._token(error.headers.get("WWW-Authenticate", ""))
                    if self.token:
                        continue
                if error.code in (301, 302, 303, 307, 308) and error.headers.get("Location"):
                    url = urllib.parse.urljoin(url, error.headers["Location"])
                    here = urllib.parse.urlsplit(url).netloc
                    authorised = here == urllib.parse.urlsplit(self.base).netloc
                    continue
                raise
        raise SystemExit(f"{url}: too many redirects")

    def manifest(self, digest: str) -> dict[str, Any]:
        with self.open(f"manifests/{digest}", ACCEPT) as answer:
            body = answer.read()
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise SystemExit(f"the upstream's manifest {digest} does not match its digest")
        return dict(json.loads(body))


def platform_manifest(index: dict[str, Any], arch: str) -> str:
    """The digest of ``arch``'s Linux manifest in an image index."""
    for entry in index.get("manifests") or []:
        wanted = entry.get("platform") or {}
        if wanted.get("os") == "linux" and wanted.get("architecture") == arch:
            return str(entry["digest"])
    raise SystemExit(f"the image has no linux/{arch} manifest")


def blobs(manifest: dict[str, Any]) -> list[tuple[str, int]]:
    """(digest, size) of the config and every layer; a digest that is not sha256 stops here
    (it names files)."""
    found = [manifest["config"], *manifest.get("layers", [])]
    out = [(str(b["digest"]), int(b["size"])) for b in found]
    for digest, _ in out:
        if not DIGEST.fullmatch(digest):
            raise SystemExit(f"blob digest {digest[:80]!r} is not sha256:<64 hex digits>")
    return out


def blob_path(root: Path, digest: str) -> Path:
    hexa = digest.removeprefix("sha256:")
    return root / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"


def link_path(root: Path, repository: str, digest: str) -> Path:
    hexa = digest.removeprefix("sha256:")
    return root / "docker/registry/v2/repositories" / repository / "_layers/sha256" / hexa / "link"


def _place(path: Path, write: Any) -> None:
    """Write through a temporary file beside ``path``, renamed once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.ironserve-partial")
    with open(partial, "wb") as out:
        write(out)
    os.replace(partial, path)


def fill_blob(upstream: Upstream, root: Path, digest: str, size: int) -> int:
    """Bytes read from upstream for one blob (0 when the cache holds it already)."""
    target = blob_path(root, digest)
    read = 0
    if not (target.is_file() and target.stat().st_size == size):
        hasher = hashlib.sha256()

        def copy(out: Any) -> None:
            nonlocal read
            with upstream.open(f"blobs/{digest}") as answer:
                while chunk := answer.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    read += len(chunk)
            if "sha256:" + hasher.hexdigest() != digest or read != size:
                raise SystemExit(f"blob {digest}: the upstream sent other bytes ({read} bytes)")

        try:
            _place(target, copy)
        finally:
            target.with_name(f".{target.name}.ironserve-partial").unlink(missing_ok=True)
    link = link_path(root, upstream.repository, digest)
    if not link.is_file():
        _place(link, lambda out: out.write(digest.encode()))
    return read


def fill(base: str, repository: str, digest: str, root: Path) -> int:
    upstream = Upstream(base, repository)
    manifest = upstream.manifest(digest)
    if "manifests" in manifest:
        arch = ARCH.get(platform.machine(), platform.machine())
        manifest = upstream.manifest(platform_manifest(manifest, arch))
    return sum(fill_blob(upstream, root, d, size) for d, size in blobs(manifest))


def main(argv: list[str]) -> int:
    base, repository, digest, root = argv
    if not DIGEST.fullmatch(digest):
        raise SystemExit(f"{digest[:80]!r} is not sha256:<64 hex digits>")
    read = fill(base, repository, digest, Path(root))
    print(f"read {read} bytes from {base} into the image cache")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
