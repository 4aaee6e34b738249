"""A loopback server answering the Hugging Face Hub's file-resolve API for one repo.

Just enough of the real protocol for huggingface_hub's hf_hub_download: HEAD and GET on
/{repo}/resolve/{revision}/{file} with the commit and ETag headers the client reads.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve_repo(repo_id: str, files: dict[str, bytes], token: str | None = None) -> Iterator[str]:
    commit = hashlib.sha1(repo_id.encode()).hexdigest()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, body: bool) -> None:
            prefix = f"/{repo_id}/resolve/"
            if not self.path.startswith(prefix):
                self.send_error(404)
                return
            _, name = self.path[len(prefix) :].split("/", 1)
            if token and self.headers.get("Authorization") != f"Bearer {token}":
                self.send_response(401)
                self.send_header("X-Error-Code", "GatedRepo")
                self.end_headers()
                return
            if name not in files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            data = files[name]
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
