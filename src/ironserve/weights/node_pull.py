#!/usr/bin/env python3
"""Runs ON a node (shipped by roles/weights, stdlib + the hub client of its venv).

    python weights-pull.py seed CONFIG    download once with the real client into <dest>.incoming,
                                          verify every file against the hub's digest, re-fetch a
                                          bad one (bounded), then move verified files into <dest>
    python3 weights-pull.py place CONFIG  a fan-out receiver: <dest>.incoming was pulled from a
                                          peer and passed `sha256sum -c`; move it into <dest>

CONFIG (JSON, no secret): kind, endpoint, repo_id, revision, dest, token_file, attempts, files
[{path, size, sha256, git_sha1}]. The token is read from token_file (0600), never from argv/env.
The manifest (ironserve-manifest.json, plus SHA256SUMS for `sha256sum -c`) is written last: a
folder without it is not complete, and no file reaches <dest> before it is verified.

The listed names were checked on the control machine (ironserve/weights/names.py); this script
checks again what it can on its own: every path it opens, moves or deletes is proven, once
resolved, to lie inside <dest> or <dest>.incoming, and a name that would break a SHA256SUMS line
stops the run (exit 2) before anything is created.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

MANIFEST = "ironserve-manifest.json"
SUMS = "SHA256SUMS"
GATED_EXIT = 3
UNSAFE_EXIT = 2


class UnsafePath(ValueError):
    """A listed name that would reach outside the weights folders, or break SHA256SUMS."""


def inside(root: Path, name: str) -> Path:
    """``root/name``, proven to lie inside ``root`` once symlinks and '..' are resolved."""
    base = root.resolve()
    path = base / name
    real = path.resolve()
    if base not in real.parents:
        raise UnsafePath(f"{name!r} leads to {real}, outside {base}")
    return path


def staged(cfg: dict[str, Any], name: str) -> Path:
    return inside(Path(f"{cfg['dest']}.incoming"), name)


def final(cfg: dict[str, Any], name: str) -> Path:
    return inside(Path(cfg["dest"]), name)


def prove_names(cfg: dict[str, Any]) -> None:
    """Every listed name stays inside both folders and fits on one SHA256SUMS line."""
    for f in cfg["files"]:
        name = f["path"]
        if not isinstance(name, str) or any(
            c == "\\" or ord(c) < 32 or ord(c) == 127 for c in name
        ):
            raise UnsafePath(f"{name!r}, which cannot be written to {SUMS}")
        staged(cfg, name)
        final(cfg, name)


def log(message: str) -> None:
    print(f"weights: {message}", flush=True)


def digests(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, in one read."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    sha1.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def check(path: Path, f: dict[str, Any]) -> str | None:
    """The file's sha256 when it matches the hub's size and digest, else None."""
    if not path.is_file() or path.stat().st_size != f["size"]:
        return None
    sha256, sha1 = digests(path)
    if f.get("sha256"):
        return sha256 if sha256 == f["sha256"] else None
    if f.get("git_sha1"):
        return sha256 if sha1 == f["git_sha1"] else None
    return sha256


def _download(cfg: dict[str, Any], staging: Path, paths: list[str], token: str | None) -> None:
    if cfg["kind"] == "modelscope":
        from modelscope import snapshot_download as ms_snapshot  # type: ignore[import-untyped]

        ms_snapshot(
            model_id=cfg["repo_id"],
            revision=cfg["revision"],
            local_dir=str(staging),
            allow_patterns=paths,
            endpoint=cfg.get("endpoint"),
            token=token,
        )
        return
    from huggingface_hub import snapshot_download

    snapshot_download(
        cfg["repo_id"],
        revision=cfg["revision"],
        local_dir=staging,
        allow_patterns=paths,
        endpoint=cfg.get("endpoint"),
        token=token or False,
        max_workers=4,
    )


def _forget(cfg: dict[str, Any], path: str) -> None:
    """Drop a bad file and the client's record of it, so the next attempt fetches it again."""
    staged(cfg, path).unlink(missing_ok=True)
    staged(cfg, f".cache/huggingface/download/{path}.metadata").unlink(missing_ok=True)


def _gated(error: BaseException) -> bool:
    names = {type(e).__name__ for e in (error, error.__cause__) if e is not None}
    status = getattr(getattr(error, "response", None), "status_code", None)
    return bool(names & {"GatedRepoError", "AuthenticationError"}) or status in (401, 403)


def seed(cfg: dict[str, Any]) -> int:
    os.environ["HF_HUB_DISABLE_XET"] = "1"  # behind a mirror: plain HTTP with Range
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if cfg.get("endpoint"):
        os.environ["HF_ENDPOINT"] = cfg["endpoint"].rstrip("/")
        os.environ["MODELSCOPE_ENDPOINT"] = cfg["endpoint"].rstrip("/")
    dest = Path(cfg["dest"])
    staging = Path(f"{dest}.incoming")
    staging.mkdir(parents=True, exist_ok=True)
    token_file = cfg.get("token_file")
    token = Path(token_file).read_text().strip() if token_file else None
    files = cfg["files"]
    total = sum(f["size"] for f in files)
    sums: dict[str, str] = {}
    for f in files:  # files already at dest (an earlier run moved them) need no download
        held = check(final(cfg, f["path"]), f)
        if held:
            staged(cfg, f["path"]).parent.mkdir(parents=True, exist_ok=True)
            os.replace(final(cfg, f["path"]), staged(cfg, f["path"]))
            sums[f["path"]] = held
    for attempt in range(1, int(cfg.get("attempts", 4)) + 1):
        pending = [f for f in files if f["path"] not in sums]
        if not pending:
            break
        log(f"download {len(pending)} file(s) of {cfg['repo_id']}, attempt {attempt}")
        started = time.monotonic()
        try:
            _download(cfg, staging, [f["path"] for f in pending], token)
        except Exception as error:  # retried below, resuming partial files
            if _gated(error):
                kind = "HF_TOKEN" if cfg["kind"] != "modelscope" else "the ModelScope token"
                log(
                    f"{cfg['repo_id']} is gated: set hub_token_file to a 0600 file holding "
                    f"{kind} (an account that accepted the model's licence)"
                )
                return GATED_EXIT
            log(f"attempt {attempt} interrupted ({type(error).__name__}); resuming")
        for f in pending:
            sha256 = check(staged(cfg, f["path"]), f)
            if sha256:
                sums[f["path"]] = sha256
            elif staged(cfg, f["path"]).is_file():
                log(f"{f['path']}: digest mismatch, discarded and fetched again")
                _forget(cfg, f["path"])
        done = sum(f["size"] for f in files if f["path"] in sums)
        log(f"verified {done}/{total} bytes ({time.monotonic() - started:.1f}s)")
    missing = [f["path"] for f in files if f["path"] not in sums]
    if missing:
        log(f"gave up: {len(missing)} file(s) never verified: {', '.join(missing[:5])}")
        return 1
    install(cfg, staging, sums)
    return 0


def install(cfg: dict[str, Any], staging: Path, sums: dict[str, str]) -> None:
    """Move verified files from staging into dest, then write the manifest (last)."""
    dest = Path(cfg["dest"])
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)  # incomplete until rewritten below
    entries = {}
    for f in cfg["files"]:
        target = final(cfg, f["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        if staged(cfg, f["path"]).exists():
            os.replace(staged(cfg, f["path"]), target)
        stat = target.stat()
        entries[f["path"]] = {
            "size": stat.st_size,
            "sha256": sums[f["path"]],
            "mtime_ns": stat.st_mtime_ns,
        }
    manifest = {
        "repo_id": cfg["repo_id"],
        "revision": cfg["revision"],
        "kind": cfg["kind"],
        "files": entries,
    }
    sums_text = "".join(f"{e['sha256']}  {p}\n" for p, e in sorted(entries.items()))
    for name, text in ((SUMS, sums_text), (MANIFEST, json.dumps(manifest, indent=1))):
        tmp = dest / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, dest / name)
    shutil.rmtree(staging, ignore_errors=True)
    log(f"complete: {len(entries)} file(s) verified at {dest}")


def place(cfg: dict[str, Any]) -> int:
    """A receiver's staging passed `sha256sum -c SHA256SUMS`: check those sums against the hub's
    (LFS files) and the sizes, then install."""
    staging = Path(f"{cfg['dest']}.incoming")
    sums = {}
    for line in (staging / SUMS).read_text().splitlines():
        digest, _, path = line.partition("  ")
        sums[path] = digest
    for f in cfg["files"]:
        ok = f["path"] in sums and staged(cfg, f["path"]).stat().st_size == f["size"]
        if not ok or (f.get("sha256") and sums[f["path"]] != f["sha256"]):
            log(f"{f['path']}: the peer's copy does not match the hub; not installed")
            return 1
    install(cfg, staging, sums)
    return 0


def main(argv: list[str]) -> int:
    command, config = argv[1], argv[2]
    cfg = json.loads(Path(config).read_text())
    try:
        prove_names(cfg)
    except UnsafePath as error:
        log(f"refused, nothing touched: the file list names {error}")
        return UNSAFE_EXIT
    return seed(cfg) if command == "seed" else place(cfg)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
