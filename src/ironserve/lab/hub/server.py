"""The lab hub's HTTP server (stdlib only): Hugging Face Hub API, ModelScope API, /_lab/ control.

Hugging Face (what huggingface_hub 2.x calls, HF_ENDPOINT=http://hub/, Xet disabled):
  GET  /api/models/{repo}[/revision/{rev}][?blobs=1]   model info: sha, siblings (+lfs)
  GET  /api/models/{repo}/tree/{rev}[/{dir}]            tree entries (oid, size, lfs)
  POST /api/models/{repo}/paths-info/{rev}              entries of the given paths
  HEAD|GET /{repo}/resolve/{rev}/{path}                 the file: X-Repo-Commit, ETag,
        X-Linked-Etag / X-Linked-Size (sha256 and size for LFS files), Range -> 206
  Errors carry X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo.
ModelScope (modelscope 1.40 / modelscope_hub, MODELSCOPE_ENDPOINT=http://hub):
  GET  /api/v1/models/{repo}[?Revision=]                model info
  GET  /api/v1/models/{repo}/revisions                  branches and tags
  GET  /api/v1/models/{repo}/repo/files?Revision=&Recursive=&Root=   Path, Size, Sha256
  HEAD|GET /api/v1/models/{repo}/repo?Revision=&FilePath=            the file, Range -> 206
  Errors: 401 (no token), 403 (wrong token), 404 (repo, revision or file unknown).
Control (JSON): GET /_lab/stats, POST /_lab/reset, GET|POST|DELETE /_lab/faults,
  POST /_lab/limit, GET|POST /_lab/repos, GET /_lab/health.

Bytes counted are file body bytes actually written to the socket, per client address and per
repo; a bandwidth cap (a token bucket shared by every response) stands in for the site's
internet link; faults (drop, corrupt, slow) hit the next matching file responses.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import socket
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .repos import CHUNK, Repo, RepoFile, RepoSpec, default_specs, generate

FAULT_KINDS = ("drop", "corrupt", "slow")


class HubError(Exception):
    """An HTTP error answer: status, the Hub's X-Error-Code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Fault:
    kind: str
    path: str  # fnmatch glob on the file path within the repo
    count: int = 1
    after_bytes: int | None = None  # drop / corrupt: file offset (default: the middle)
    delay_s: float = 1.0  # slow: before the response starts
    repo: str | None = None  # only this repo (default: any)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fault:
        kind = doc.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        if not isinstance(doc.get("path"), str):
            raise ValueError("path (a glob on the file path in the repo) is required")
        after = doc.get("after_bytes")
        fault = cls(
            kind=kind,
            path=doc["path"],
            count=int(doc.get("count", 1)),
            after_bytes=None if after is None else int(after),
            delay_s=float(doc.get("delay_s", 1.0)),
            repo=doc.get("repo"),
        )
        if fault.count < 1 or (fault.after_bytes or 0) < 0 or fault.delay_s < 0:
            raise ValueError("count must be >= 1, after_bytes and delay_s >= 0")
        return fault


class Limiter:
    """A global bandwidth cap: each chunk reserves its slot on one shared timeline and is
    sent when the slot ends, so the bytes of all responses together never exceed the rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rate: int | None = None
        self._next = 0.0

    def set(self, rate: int | None) -> None:
        with self._lock:
            self.rate = rate if rate else None
            self._next = time.monotonic()

    def chunk(self) -> int:
        rate = self.rate
        return CHUNK if rate is None else max(16 << 10, min(CHUNK, rate // 16))

    def take(self, n: int) -> None:
        with self._lock:
            rate = self.rate
            if rate is None:
                return
            now = time.monotonic()
            self._next = max(self._next, now) + n / rate
            until = self._next
        time.sleep(max(0.0, until - now))


class Hub:
    """Everything the handlers share: repos, counters, faults, the limiter."""

    def __init__(self, data: Path, catalog: Path | None = None) -> None:
        self.data, self.catalog = data, catalog
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()
        self.repo_lock = threading.Lock()  # one generation at a time
        self.faults: list[Fault] = []
        self.limiter = Limiter()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.total_bytes = 0
            self.requests = 0
            self.clients: dict[str, int] = {}
            self.repo_bytes: dict[str, int] = {}
            self.file_bytes: dict[str, int] = {}
            self.faults_fired: dict[str, int] = {k: 0 for k in FAULT_KINDS}

    def add_repo(self, spec: RepoSpec) -> Repo:
        with self.repo_lock:
            repo = generate(self.data, spec, self.catalog)
        with self.lock:
            self.repos[spec.repo_id] = repo
        return repo

    def count(self, client: str, repo: str, path: str, n: int) -> None:
        with self.lock:
            self.total_bytes += n
            self.clients[client] = self.clients.get(client, 0) + n
            self.repo_bytes[repo] = self.repo_bytes.get(repo, 0) + n
            key = f"{repo}/{path}"
            self.file_bytes[key] = self.file_bytes.get(key, 0) + n

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "total_bytes": self.total_bytes,
                "clients": dict(self.clients),
                "repos": dict(self.repo_bytes),
                "files": dict(self.file_bytes),
                "requests": self.requests,
                "faults_fired": dict(self.faults_fired),
                "limit_bytes_per_s": self.limiter.rate,
            }

    def take_fault(self, repo: str, f: RepoFile, start: int, end: int) -> Fault | None:
        """The first armed fault for this body response (consumed), or None.

        drop/corrupt hit only a response whose range holds their offset; slow hits any."""
        with self.lock:
            for fault in self.faults:
                if fault.repo not in (None, repo) or not fnmatch.fnmatchcase(f.path, fault.path):
                    continue
                if fault.kind != "slow":
                    at = f.size // 2 if fault.after_bytes is None else fault.after_bytes
                    if not start <= at < end:
                        continue
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                self.faults_fired[fault.kind] += 1
                return fault
        return None


# ---------------------------------------------------------------------------------------------
# HTTP


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `bytes=` range; None: the whole file. ValueError: unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    if first == "":
        if not last:
            return None
        n = int(last)
        if n <= 0:
            raise ValueError(header)
        return max(0, size - n), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        raise ValueError(header)
    return start, end


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ironserve-lab-hub/1"
    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    @property
    def hub(self) -> Hub:
        return self.server.hub

    # -- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        body = self._body()
        try:
            if parts[:1] == ["_lab"]:
                self._control(method, parts[1:], body)
                return
            with self.hub.lock:
                self.hub.requests += 1
            if parts[:3] == ["api", "v1", "models"] or parts[:3] == ["openapi", "v1", "models"]:
                self._modelscope(method, parts[3:], query)
            elif parts[:2] == ["api", "models"]:
                self._hf_api(method, parts[2:], query, body)
            elif len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
                self._hf_resolve(method, parts)
            else:
                raise HubError(404, "NotFound", f"no such endpoint: {url.path}")
        except HubError as error:
            self._error(error, modelscope="v1" in parts[1:2])
        except (ValueError, KeyError, TypeError) as error:
            self._error(HubError(400, "BadRequest", str(error)), modelscope="v1" in parts[1:2])
        except OSError:
            self.close_connection = True  # the client went away mid-answer
        except Exception:
            traceback.print_exc()
            self._error(HubError(500, "Internal", "internal error"), modelscope=False)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- answers -------------------------------------------------------------------------------

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, error: HubError, modelscope: bool) -> None:
        if modelscope:
            doc: dict[str, Any] = {
                "Code": error.status, "Message": error.message, "Success": False,
                "RequestId": "lab",
            }  # fmt: skip
        else:
            doc = {"error": error.message}
        # Header values must be latin-1: a repo id from the URL may not be.
        plain = error.message.encode("ascii", "replace").decode()
        headers = {"X-Error-Code": error.code, "X-Error-Message": plain}
        try:
            self._json(error.status, doc, headers)
        except OSError:
            self.close_connection = True

    # -- shared lookups ------------------------------------------------------------------------

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        for cookie in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = cookie.strip().partition("=")
            if name == "m_session_id" and value:
                return value
        return None

    def _repo(self, repo_id: str, rev: str | None) -> Repo:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "RepoNotFound", f"Repository Not Found for {repo_id}.")
        if repo.spec.gated:
            token = self._token()
            if token is None:
                raise HubError(
                    401, "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                )  # fmt: skip
            if token != repo.spec.token:
                raise HubError(
                    403, "GatedRepo",
                    f"Access to model {repo_id} is restricted and you are not in the "
                    "authorized list.",
                )  # fmt: skip
        if rev is not None and rev not in repo.revisions():
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev} for {repo_id}.")
        return repo

    @staticmethod
    def _file(repo: Repo, path: str) -> RepoFile:
        f = repo.files.get(path)
        if f is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {repo.spec.repo_id}.")
        return f

    # -- Hugging Face --------------------------------------------------------------------------

    def _hf_api(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> None:
        if len(parts) < 2:
            raise HubError(404, "RepoNotFound", "Repository Not Found.")
        repo_id, rest = "/".join(parts[:2]), parts[2:]
        if not rest or (rest[0] == "revision" and len(rest) == 2):
            repo = self._repo(repo_id, rest[1] if rest else None)
            self._json(200, self._hf_info(repo, bool(query.get("blobs"))))
        elif rest[0] == "tree" and len(rest) >= 2:
            repo = self._repo(repo_id, rest[1])
            prefix = "/".join(rest[2:])
            recursive = query.get("recursive", "").lower() in ("1", "true")
            self._json(200, self._hf_tree(repo, prefix, recursive))
        elif rest[0] == "paths-info" and len(rest) == 2 and method == "POST":
            repo = self._repo(repo_id, rest[1])
            wanted = self._paths(body)
            entries = [self._hf_entry(repo.files[p]) for p in wanted if p in repo.files]
            self._json(200, entries)
        else:
            raise HubError(404, "NotFound", f"no such endpoint under {repo_id}")

    def _paths(self, body: bytes) -> list[str]:
        kind = self.headers.get("Content-Type") or ""
        if "json" in kind:
            doc = json.loads(body or b"{}")
            return [str(p) for p in doc.get("paths", [])]
        return [p for p in parse_qs(body.decode()).get("paths", [])]

    @staticmethod
    def _hf_entry(f: RepoFile) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.path}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
        return entry

    def _hf_tree(self, repo: Repo, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        # The generated repos are flat: no folders to list.
        if prefix:
            raise HubError(404, "EntryNotFound", f"{prefix} does not exist on {repo.spec.repo_id}.")
        return [self._hf_entry(f) for f in repo.listing()]

    @staticmethod
    def _hf_info(repo: Repo, blobs: bool) -> dict[str, Any]:
        siblings = []
        for f in repo.listing():
            sibling: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                sibling |= {"size": f.size, "blobId": f.blob_id}
                if f.lfs:
                    sibling["lfs"] = {
                        "sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size
                    }  # fmt: skip
            siblings.append(sibling)
        owner = repo.spec.repo_id.split("/")[0]
        return {
            "_id": repo.commit[:24],
            "id": repo.spec.repo_id,
            "modelId": repo.spec.repo_id,
            "author": owner,
            "sha": repo.commit,
            "private": False,
            "gated": "manual" if repo.spec.gated else False,
            "disabled": False,
            "tags": ["safetensors", "llama", "text-generation"],
            "library_name": "transformers",
            "pipeline_tag": "text-generation",
            "siblings": siblings,
            "usedStorage": repo.total_bytes,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
        }

    def _hf_resolve(self, method: str, parts: list[str]) -> None:
        repo_id, rev, path = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo = self._repo(repo_id, rev)
        f = self._file(repo, path)
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{f.etag}"'}
        if f.lfs:
            headers |= {"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)}
        self._send_file(method, repo, f, headers)

    # -- ModelScope ----------------------------------------------------------------------------

    def _modelscope(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        if len(parts) < 2:
            raise HubError(404, "RepoNotFound", "model not found")
        repo_id, rest = "/".join(parts[:2]), parts[2:]
        rev = query.get("Revision") or None
        if not rest:
            repo = self._repo(repo_id, rev)
            self._ms_json(self._ms_info(repo))
        elif rest == ["revisions"]:
            repo = self._repo(repo_id, None)
            branches = [{"Revision": "master", "CommitId": repo.commit}]
            tags = [{"Revision": t, "CommitId": repo.commit} for t in repo.spec.revision_tags]
            self._ms_json({"RevisionMap": {"Branches": branches, "Tags": tags}})
        elif rest == ["repo", "files"]:
            repo = self._repo(repo_id, rev)
            root = (query.get("Root") or "").strip("/")
            if root:
                raise HubError(404, "EntryNotFound", f"no folder {root} in {repo_id}")
            self._ms_json({"Files": [self._ms_entry(repo, f) for f in repo.listing()]})
        elif rest == ["repo"] and method in ("GET", "HEAD"):
            repo = self._repo(repo_id, rev)
            f = self._file(repo, query.get("FilePath", ""))
            self._send_file(method, repo, f, {"ETag": f'"{f.sha256}"'})
        else:
            raise HubError(404, "NotFound", f"no such endpoint under {repo_id}")

    def _ms_json(self, data: Any) -> None:
        self._json(200, {"Code": 200, "Data": data, "Message": "success", "Success": True,
                         "RequestId": "lab"})  # fmt: skip

    @staticmethod
    def _ms_entry(repo: Repo, f: RepoFile) -> dict[str, Any]:
        return {
            "Name": f.path.rsplit("/", 1)[-1],
            "Path": f.path,
            "Type": "blob",
            "Size": f.size,
            "Sha256": f.sha256,
            "IsLFS": f.lfs,
            "Revision": repo.commit,
            "CommitId": repo.commit,
            "CommittedDate": 1767225600,
        }

    @staticmethod
    def _ms_info(repo: Repo) -> dict[str, Any]:
        owner, name = repo.spec.repo_id.split("/")
        return {
            "Id": repo.spec.repo_id, "Name": name, "Path": owner, "ChineseName": name,
            "Revision": "master", "LatestCommitId": repo.commit, "Private": repo.spec.gated,
            "StorageSize": repo.total_bytes, "Tags": list(repo.spec.revision_tags),
        }  # fmt: skip

    # -- file bodies ---------------------------------------------------------------------------

    def _send_file(self, method: str, repo: Repo, f: RepoFile, headers: dict[str, str]) -> None:
        try:
            span = _range(self.headers.get("Range"), f.size)
        except ValueError:
            self._json(416, {"error": "range not satisfiable"},
                       {"Content-Range": f"bytes */{f.size}"})  # fmt: skip
            return
        start, end = span if span is not None else (0, f.size)
        fault = None
        if method == "GET":
            fault = self.hub.take_fault(repo.spec.repo_id, f, start, end)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        self.send_response(206 if span is not None else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method == "HEAD":
            return
        at = -1
        if fault is not None and fault.kind in ("drop", "corrupt"):
            at = f.size // 2 if fault.after_bytes is None else fault.after_bytes
        client, limiter = self.client_address[0], self.hub.limiter
        with open(repo.root / f.path, "rb") as src:
            src.seek(start)
            offset = start
            while offset < end:
                n = min(limiter.chunk(), end - offset)
                if fault is not None and fault.kind == "drop" and offset <= at < offset + n:
                    n = at - offset  # up to the drop point, then the connection goes
                chunk = bytearray(src.read(n)) if n else bytearray()
                if len(chunk) != n:
                    raise OSError(f"{f.path}: short read")
                if fault is not None and fault.kind == "corrupt" and offset <= at < offset + n:
                    chunk[at - offset] ^= 0xFF
                if n:
                    limiter.take(n)
                    self.wfile.write(chunk)
                    self.hub.count(client, repo.spec.repo_id, f.path, n)
                    offset += n
                if fault is not None and fault.kind == "drop" and offset == at:
                    self._drop()
                    return

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- control -------------------------------------------------------------------------------

    def _control(self, method: str, parts: list[str], body: bytes) -> None:
        doc: Any = json.loads(body) if body.strip() else {}
        what = parts[0] if parts else ""
        hub = self.hub
        if what in ("stats", "health") and method == "GET":
            self._json(200, hub.stats() if what == "stats" else {"ok": True})
        elif what == "reset" and method == "POST":
            hub.reset()
            self._json(200, hub.stats())
        elif what == "faults" and method == "POST":
            fault = Fault.from_json(doc)
            with hub.lock:
                hub.faults.append(fault)
            self._json(200, asdict(fault))
        elif what == "faults" and method == "DELETE":
            with hub.lock:
                hub.faults.clear()
            self._json(200, {"faults": []})
        elif what == "faults" and method == "GET":
            with hub.lock:
                self._json(200, {"faults": [asdict(f) for f in hub.faults]})
        elif what == "limit" and method == "POST":
            rate = doc.get("bytes_per_s")
            if rate is not None and int(rate) <= 0:
                raise ValueError("bytes_per_s must be > 0 or null")
            hub.limiter.set(None if rate is None else int(rate))
            self._json(200, {"bytes_per_s": hub.limiter.rate})
        elif what == "repos" and method == "GET":
            self._json(200, {r: repo.describe() for r, repo in sorted(hub.repos.items())})
        elif what == "repos" and method == "POST":
            repo = hub.add_repo(RepoSpec.from_json(doc))
            self._json(200, repo.describe())
        else:
            raise HubError(404, "NotFound", f"no control endpoint {method} /_lab/{what}")


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: Hub, verbose: bool = False) -> None:
        self.hub, self.verbose = hub, verbose
        super().__init__(address, Handler)


def serve_in_thread(hub: Hub, host: str = "127.0.0.1", port: int = 0) -> HubServer:
    """Start a hub server on a background thread (tests); `.shutdown()` stops it."""
    server = HubServer((host, port), hub)
    threading.Thread(target=server.serve_forever, name="lab-hub", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labhub", description="The lab model hub.")
    parser.add_argument("--data", required=True, type=Path, help="Where repos are generated")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--catalog", type=Path, help="Folder of catalog model JSON files")
    parser.add_argument("--token-file", type=Path, help="Accepted token of the gated default")
    parser.add_argument("--defaults", action="store_true", help="Generate the default repos")
    parser.add_argument("--models", type=Path, help="Folder of real model folders to serve")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    hub = Hub(args.data, args.catalog)
    if args.defaults:
        token = args.token_file.read_text().strip() if args.token_file else "hf_lab_token"
        for spec in default_specs(token, args.models):
            started = time.monotonic()
            hub.add_repo(spec)
            print(f"hub: {spec.repo_id} ready in {time.monotonic() - started:.1f}s", flush=True)
    server = HubServer((args.host, args.port), hub, verbose=args.verbose)
    print(f"hub: serving on {args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
