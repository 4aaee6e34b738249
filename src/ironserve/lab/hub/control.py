"""HubControl: the lab hub's /_lab/ control API from tests, benchmarks and the CLI (httpx)."""

from __future__ import annotations

from typing import Any, cast

import httpx


class HubControl:
    """``HubControl("http://172.30.100.3/")``: counters, faults, bandwidth cap and repos."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        # trust_env=False: the lab's addresses must never go through an operator's proxy.
        with httpx.Client(timeout=timeout or self.timeout, trust_env=False) as client:
            response = client.request(method, f"{self.url}/_lab/{path}", json=body)
        if response.status_code != 200:
            message = response.headers.get("X-Error-Message") or response.text
            raise RuntimeError(f"hub {method} /_lab/{path}: {response.status_code} {message}")
        return cast(dict[str, Any], response.json())

    def health(self) -> bool:
        try:
            return bool(self._call("GET", "health", timeout=2.0).get("ok"))
        except (httpx.HTTPError, RuntimeError):
            return False

    def stats(self) -> dict[str, Any]:
        """{"total_bytes", "clients": {ip: bytes}, "repos": {repo_id: bytes},
        "files": {"repo_id/path": bytes}, "requests", "faults_fired", "limit_bytes_per_s"}"""
        return self._call("GET", "stats")

    def reset(self) -> dict[str, Any]:
        """Zero the counters (faults and the bandwidth cap stay)."""
        return self._call("POST", "reset")

    def fault(
        self,
        kind: str,
        path: str,
        count: int = 1,
        after_bytes: int | None = None,
        delay_s: float | None = None,
        repo: str | None = None,
    ) -> dict[str, Any]:
        """Arm a fault for the next `count` file responses whose path matches the glob `path`:
        drop (close the connection at file offset `after_bytes`, default the middle), corrupt
        (flip the byte at `after_bytes`), slow (wait `delay_s` before answering)."""
        body: dict[str, Any] = {"kind": kind, "path": path, "count": count}
        if after_bytes is not None:
            body["after_bytes"] = after_bytes
        if delay_s is not None:
            body["delay_s"] = delay_s
        if repo is not None:
            body["repo"] = repo
        return self._call("POST", "faults", body)

    def faults(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def limit(self, bytes_per_s: int | None) -> None:
        """Cap all file bytes served together at `bytes_per_s` (None: no cap)."""
        self._call("POST", "limit", {"bytes_per_s": bytes_per_s})

    def add_repo(
        self,
        repo_id: str,
        total_bytes: int = 32 << 20,
        shards: int = 4,
        gated: bool = False,
        token: str | None = None,
        revision_tags: list[str] | None = None,
        unsafe_names: list[str] | None = None,
    ) -> dict[str, Any]:
        """(Re)generate a repo (may take a while for GBs); returns it as `repos()` lists it.
        ``unsafe_names``: names its listing holds beside the files (a hostile hub), never served."""
        body: dict[str, Any] = {
            "repo_id": repo_id,
            "total_bytes": total_bytes,
            "shards": shards,
            "gated": gated,
            "revision_tags": revision_tags or ["v1.0"],
        }
        if token is not None:
            body["token"] = token
        if unsafe_names:
            body["unsafe_names"] = unsafe_names
        return self._call("POST", "repos", body, timeout=max(self.timeout, 3600.0))

    def repos(self) -> dict[str, dict[str, Any]]:
        """{repo_id: {"commit", "gated", "shards", "revision_tags", "total_bytes",
        "files": {path: {"size", "sha256", "lfs"}}}}"""
        return cast(dict[str, dict[str, Any]], self._call("GET", "repos"))
