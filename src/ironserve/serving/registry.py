"""The engine image, resolved ONCE on the control machine to a manifest digest.

Every node then pulls ``name@sha256:...``: all nodes run the same bytes even if the tag moves
during the rollout, and an image that is not in the registry stops the run before any container
is replaced. Resolution is the registry HTTP API v2: ``HEAD /v2/<name>/manifests/<tag>`` with
the Accept headers of multi-arch indexes and single manifests (the answer's
``Docker-Content-Digest`` is what ``docker pull`` pins), and the Bearer token flow of Docker Hub
and most registries (``WWW-Authenticate: Bearer realm=...,service=...,scope=...``, anonymous).

Names follow Docker's rules: the first path component is a registry when it holds a ``.`` or a
``:`` or is ``localhost``; otherwise the image is on Docker Hub (``library/`` for one-word names),
which nodes may reach through ``registry-mirrors`` -- so the control machine asks those mirrors
first, as dockerd does. Registries listed as insecure (and loopback) are spoken to over HTTP.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "https://registry-1.docker.io"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")  # always fullmatch: '$' would let a newline by
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class ImageError(RuntimeError):
    """The image cannot be resolved: not in the registry, or no registry answered."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "docker.io" or "host[:port]"
    repository: str  # "vllm/vllm-openai" ("library/ubuntu" on Docker Hub)
    tag: str | None
    digest: str | None
    name: str  # the name as written, without tag or digest ("vllm/vllm-openai")

    @property
    def reference(self) -> str:
        """What the manifest is asked for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def pinned(self, digest: str) -> str:
        """``name@sha256:...``: the name as the operator wrote it, pinned."""
        return f"{self.name}@{digest}"


def is_digest(value: str) -> bool:
    """``sha256:`` and 64 lower-case hex digits, nothing else: a registry's answer is data that
    reaches the nodes' command lines, so nothing else is ever used as a digest."""
    return _DIGEST.fullmatch(value) is not None


def parse_image(ref: str) -> ImageRef:
    """Split an image reference the way Docker does."""
    name, digest = ref, None
    if "@" in ref:
        name, digest = ref.split("@", 1)
    if digest is not None and not is_digest(digest):
        raise ImageError(f"image {ref!r}: {digest!r} is not a sha256 digest")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
        if "/" not in repository:
            repository = f"library/{repository}"
    if not repository or repository != repository.lower():
        raise ImageError(f"image {ref!r}: repository names are lower case")
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest, name=name)


def _is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoints(image: ImageRef, insecure: Iterable[str], mirrors: Iterable[str]) -> list[str]:
    """Base URLs to ask, in dockerd's order: mirrors first for Docker Hub images."""
    if image.registry == DOCKER_HUB:
        return [m.rstrip("/") for m in mirrors] + [DOCKER_HUB_API]
    plain = image.registry in set(insecure) or _is_loopback(image.registry)
    return [f"{'http' if plain else 'https'}://{image.registry}"]


def _token(client: httpx.Client, challenge: str, repository: str) -> str | None:
    """An anonymous pull token for a Bearer challenge (None: not a Bearer challenge)."""
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() != "bearer":
        return None
    fields = dict(_CHALLENGE.findall(params))
    realm = fields.get("realm")
    if not realm:
        return None
    query = {"service": fields.get("service", ""), "scope": f"repository:{repository}:pull"}
    answer = client.get(realm, params={k: v for k, v in query.items() if v})
    answer.raise_for_status()
    doc = answer.json()
    token = doc.get("token") or doc.get("access_token")
    return str(token) if token else None


def _manifest_digest(client: httpx.Client, base: str, image: ImageRef) -> tuple[int, str | None]:
    """(HTTP status, digest) of the image's manifest at ``base``."""
    url = f"{base}/v2/{image.repository}/manifests/{image.reference}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    answer = client.head(url, headers=headers)
    if answer.status_code == 401:
        token = _token(client, answer.headers.get("www-authenticate", ""), image.repository)
        if token:
            headers["Authorization"] = f"Bearer {token}"
            answer = client.head(url, headers=headers)
    if answer.status_code != 200:
        return answer.status_code, None
    digest = answer.headers.get("docker-content-digest")
    if not digest:  # some registries only send it on GET: the digest is the body's sha256
        body = client.get(url, headers=headers)
        body.raise_for_status()
        digest = "sha256:" + hashlib.sha256(body.content).hexdigest()
    if not is_digest(digest):  # a hostile or broken registry (or mirror): never used
        raise ValueError(f"Docker-Content-Digest {digest[:100]!r} is not sha256:<64 hex digits>")
    return 200, digest


def resolve(
    ref: str,
    *,
    insecure: Iterable[str] = (),
    mirrors: Iterable[str] = (),
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """``ref`` pinned by digest (``name@sha256:...``), or ImageError saying where it is missing.

    A digest already in ``ref`` is checked to exist, not trusted blindly."""
    image = parse_image(ref)
    answers: list[str] = []
    with httpx.Client(timeout=timeout, transport=transport, follow_redirects=True) as client:
        for base in endpoints(image, insecure, mirrors):
            try:
                status, digest = _manifest_digest(client, base, image)
            except (httpx.HTTPError, ValueError) as error:
                answers.append(f"{base}: {type(error).__name__}: {error}")
                continue
            if digest is not None:
                if image.digest is not None and digest != image.digest:
                    raise ImageError(f"image {ref}: {base} serves digest {digest} for it")
                return image.pinned(digest)
            what = "not found" if status == 404 else f"HTTP {status}"
            answers.append(f"{base}: {what}")
    missing = all(a.endswith("not found") for a in answers)
    raise ImageError(
        f"image {ref} {'is not in' if missing else 'could not be resolved from'} its registry "
        f"({'; '.join(answers)}). Nothing was changed on the nodes. Remedy: "
        + (
            "push the image there, or set engine_image to one that exists"
            if missing
            else "check that this machine reaches the registry (or a mirror), then run again"
        )
    )
