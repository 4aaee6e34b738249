"""Debian package version strings (no pyinfra here: the inventory checks import it)."""

from __future__ import annotations


def upstream_version(version: str) -> str:
    """``1:580.95.05-0ubuntu0.24.04.1`` -> ``580.95.05`` (no epoch, no Debian revision)."""
    without_epoch = version.split(":", 1)[1] if ":" in version else version
    return without_epoch.rsplit("-", 1)[0] if "-" in without_epoch else without_epoch
