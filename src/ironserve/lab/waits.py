"""Waiting for a lab service to answer over HTTP (the hub, the registry)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request


def wait_http_ok(url: str, what: str, timeout: float) -> None:
    """Until ``GET url`` answers 200; a RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} at {url} did not answer within {timeout}s")
        time.sleep(0.2)
