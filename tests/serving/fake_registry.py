"""A registry HTTP API v2 on loopback for tests: manifests by tag and digest, HEAD and GET,
an optional Bearer token challenge (as Docker Hub's), 404 for what it does not hold."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


class Registry:
    def __init__(self, token: str | None = None, digest_on_head: bool = True) -> None:
        self.images: dict[str, dict[str, bytes]] = {}  # repository -> {tag or digest: body}
        self.token = token
        self.digest_on_head = digest_on_head
        # A hostile registry: repository -> the Docker-Content-Digest it answers instead.
        self.lies: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.url = ""

    def push(self, repository: str, tag: str, payload: str = "x") -> str:
        body = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "p": payload}).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.images.setdefault(repository, {})[tag] = body
        self.images[repository][digest] = body
        return digest


def _handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, head: bool) -> None:
            registry.requests.append((self.command, self.path, dict(self.headers)))
            if self.path.startswith("/token"):
                body = json.dumps({"token": registry.token}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if registry.token and self.headers.get("Authorization") != f"Bearer {registry.token}":
                self.send_response(401)
                self.send_header(
                    "WWW-Authenticate",
                    f'Bearer realm="{registry.url}/token",service="fake-registry"',
                )
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            parts = self.path.removeprefix("/v2/").rsplit("/manifests/", 1)
            body = registry.images.get(parts[0], {}).get(parts[-1]) if len(parts) == 2 else None
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", INDEX_TYPE)
            self.send_header("Content-Length", str(len(body)))
            if registry.digest_on_head or not head:
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                self.send_header("Docker-Content-Digest", registry.lies.get(parts[0], digest))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._answer(True)

        def do_GET(self) -> None:
            self._answer(False)

    return Handler


@contextmanager
def serve(registry: Registry) -> Iterator[Registry]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    registry.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
