#!/usr/bin/env python3
"""Runs ON a node (shipped by roles/weights, stdlib + the hub client of its venv).

    python weights-pull.py seed CONFIG --run ID
        the group's root: download file by file with the real client into <dest>.incoming,
        verify each against the hub's digest (a bad one is fetched again, bounded), move it
        into <dest> and append its name to <dest>/.ironserve-ready
    python3 weights-pull.py stream CONFIG --run ID --from USER@HOST --key K --known-hosts KH
        [--from-complete]
        a receiver: poll the upstream's progress file over the fan-out key (a forced read-only
        rrsync of the upstream's <dest>), pull each newly ready file into <dest>.incoming,
        verify it against the hub's digest, move it into <dest>, append it to its own progress
        file (its downstream reads it the same way); ends when every file is in place

The progress file (<dest>/.ironserve-ready): line 1 ``run ID`` (the deploy's run: a file left by
an earlier run is ignored), then one verified file name a line, appended as each file lands; a
reader counts only complete lines and refuses a name the hub did not list. <dest>/.ironserve-failed
(``run ID`` and why) tells the downstream nodes to stop rather than wait.

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

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MANIFEST = "ironserve-manifest.json"
SUMS = "SHA256SUMS"
READY = ".ironserve-ready"
FAILED = ".ironserve-failed"
# A receiver asks its upstream for news when it expects the next file there (``Pace``), within
# [POLL_S, POLL_MAX_S]: a poll is an rsync round trip that costs both nodes CPU, so it is not
# spent while the upstream is still busy with a large file. It gives up when nothing new arrives
# for WAIT_S plus the largest missing file at WAIT_MIN_BYTES_PER_S (the upstream may be
# downloading it from a slow hub, retries included).
POLL_S = 0.15
POLL_MAX_S = 1.0
WAIT_S = 300
WAIT_MIN_BYTES_PER_S = 1 << 20
# Files below this size are downloaded together, first (see ``batches``).
SMALL_FILE = 4 << 20
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
    if path.is_symlink() or not path.is_file() or path.stat().st_size != f["size"]:
        return None  # a link (a peer could send one) is never a verified file
    sha256, sha1 = digests(path)
    if f.get("sha256"):
        return sha256 if sha256 == f["sha256"] else None
    if f.get("git_sha1"):
        return sha256 if sha1 == f["git_sha1"] else None
    return sha256


def _download(cfg: dict[str, Any], staging: Path, paths: list[str], token: str | None) -> None:
    """These files with the real client into staging (a partial file from a drop is resumed):
    several in parallel (the small ones, in one call), or one (a shard: the hub's whole link on
    it, so it is verified and passed on as soon as possible)."""
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
    from concurrent.futures import ThreadPoolExecutor

    from huggingface_hub import hf_hub_download

    def one(path: str) -> None:
        hf_hub_download(
            cfg["repo_id"],
            path,
            revision=cfg["revision"],
            local_dir=staging,
            endpoint=cfg.get("endpoint"),
            token=token or False,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, paths))  # the first error raised, after the others ended


def _forget(cfg: dict[str, Any], path: str) -> None:
    """Drop a bad file and the client's record of it, so the next attempt fetches it again."""
    staged(cfg, path).unlink(missing_ok=True)
    staged(cfg, f".cache/huggingface/download/{path}.metadata").unlink(missing_ok=True)


def _gated(error: BaseException) -> bool:
    names = {type(e).__name__ for e in (error, error.__cause__) if e is not None}
    status = getattr(getattr(error, "response", None), "status_code", None)
    return bool(names & {"GatedRepoError", "AuthenticationError"}) or status in (401, 403)


class Gated(Exception):
    """The hub wants a token this node was not given."""


class Failed(Exception):
    """The stream stops on this node; the message says why (written for the downstream too)."""


def parse_progress(text: str, run: str, listed: set[str]) -> list[str] | None:
    """The file names an upstream's progress file calls verified, in its order; None when the
    file is another run's (left by an earlier run) or has no complete first line yet.

    Only complete lines count (the last one may be half appended). The upstream is a peer, not
    an authority: a name the hub did not list is refused (UnsafePath), never fetched."""
    lines = text.split("\n")[:-1]
    if not lines or lines[0] != f"run {run}":
        return None
    names = lines[1:]
    for name in names:
        if name not in listed:
            raise UnsafePath(f"{name!r}, which the hub does not list")
    return names


def failure_of(text: str, run: str) -> str | None:
    """Why the upstream stopped, when its failure file is this run's."""
    first, _, why = text.partition("\n")
    if first != f"run {run}":
        return None
    return why.strip() or "no reason given"


class Progress:
    """This node's progress file (and failure file) in <dest>, which its downstream reads."""

    def __init__(self, cfg: dict[str, Any], run: str) -> None:
        self.run = run
        self.dest = Path(cfg["dest"])
        self.dest.mkdir(parents=True, exist_ok=True)
        self.ready = inside(self.dest, READY)
        self.failed = inside(self.dest, FAILED)

    def start(self, held: list[str]) -> None:
        """A new run: no failure, the files already verified here are ready."""
        self.failed.unlink(missing_ok=True)
        (self.dest / MANIFEST).unlink(missing_ok=True)  # incomplete until finish() rewrites it
        (self.dest / SUMS).unlink(missing_ok=True)
        self._write(self.ready, "".join(f"{n}\n" for n in [f"run {self.run}", *held]))

    def add(self, name: str) -> None:
        with self.ready.open("a") as handle:
            handle.write(f"{name}\n")

    def fail(self, why: str) -> None:
        self._write(self.failed, f"run {self.run}\n{why}\n")

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_name(f"{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def held_files(cfg: dict[str, Any]) -> dict[str, str]:
    """{name: sha256} of the files already verified at the final path (an earlier run's)."""
    held = {}
    for f in cfg["files"]:
        sha256 = check(final(cfg, f["path"]), f)
        if sha256:
            held[f["path"]] = sha256
    return held


def land(cfg: dict[str, Any], f: dict[str, Any]) -> str | None:
    """Verify a staged file against the hub's digest and move it to the final path: its
    sha256, or None (the staged copy discarded) when it does not match."""
    sha256 = check(staged(cfg, f["path"]), f)
    if not sha256:
        _forget(cfg, f["path"])
        return None
    target = final(cfg, f["path"])
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged(cfg, f["path"]), target)
    return sha256


def _hub_env(cfg: dict[str, Any]) -> None:
    os.environ["HF_HUB_DISABLE_XET"] = "1"  # behind a mirror: plain HTTP with Range
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if cfg.get("endpoint"):
        os.environ["HF_ENDPOINT"] = cfg["endpoint"].rstrip("/")
        os.environ["MODELSCOPE_ENDPOINT"] = cfg["endpoint"].rstrip("/")


def batches(files: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The download's order: the small files together first (configs, tokenizer, index: one
    parallel call, so the downstream nodes have them at once), then each large file alone."""
    small = [f for f in files if f["size"] < SMALL_FILE]
    large = [[f] for f in files if f["size"] >= SMALL_FILE]
    return ([small] if small else []) + large


def _fetch(
    cfg: dict[str, Any], batch: list[dict[str, Any]], token: str | None, progress: Progress
) -> dict[str, str]:
    """Files from the hub, each verified, moved into place and announced as it lands:
    {name: sha256} (bounded attempts; Failed when one never verifies)."""
    staging = Path(f"{cfg['dest']}.incoming")
    attempts = int(cfg.get("attempts", 4))
    sums: dict[str, str] = {}
    for attempt in range(1, attempts + 1):
        pending = [f for f in batch if f["path"] not in sums]
        if not pending:
            break
        started = time.monotonic()
        try:
            _download(cfg, staging, [f["path"] for f in pending], token)
        except Exception as error:  # retried below, resuming the partial file
            if _gated(error):
                raise Gated from error
            log(f"attempt {attempt} interrupted ({type(error).__name__}); resuming")
        for f in pending:
            arrived = staged(cfg, f["path"]).is_file()
            sha256 = land(cfg, f)
            if sha256:
                sums[f["path"]] = sha256
                progress.add(f["path"])
            elif arrived:
                log(f"{f['path']}: digest mismatch, discarded and fetched again")
        done = sum(f["size"] for f in batch if f["path"] in sums)
        log(f"verified {len(sums)} file(s), {done} bytes ({time.monotonic() - started:.1f}s)")
    missing = [f["path"] for f in batch if f["path"] not in sums]
    if missing:
        raise Failed(f"never verified in {attempts} attempt(s): {', '.join(missing[:5])}")
    return sums


def seed(cfg: dict[str, Any], run: str) -> int:
    """The group's one download, in the order of ``batches``, so the downstream nodes start on
    the first file while the hub still sends the next."""
    _hub_env(cfg)
    Path(f"{cfg['dest']}.incoming").mkdir(parents=True, exist_ok=True)
    token_file = cfg.get("token_file")
    token = Path(token_file).read_text().strip() if token_file else None
    progress = Progress(cfg, run)
    sums = held_files(cfg)
    progress.start(list(sums))
    pending = [f for f in cfg["files"] if f["path"] not in sums]
    log(f"download {len(pending)} file(s) of {cfg['repo_id']}")
    try:
        for batch in batches(pending):
            sums |= _fetch(cfg, batch, token, progress)
    except Gated:
        kind = "HF_TOKEN" if cfg["kind"] != "modelscope" else "the ModelScope token"
        log(
            f"{cfg['repo_id']} is gated: set hub_token_file to a 0600 file holding "
            f"{kind} (an account that accepted the model's licence)"
        )
        progress.fail(f"{cfg['repo_id']} is gated and the seed has no token")
        return GATED_EXIT
    except Failed as error:
        log(f"gave up: {error}")
        progress.fail(f"the seed gave up: {error}")
        return 1
    finish(cfg, sums)
    return 0


def finish(cfg: dict[str, Any], sums: dict[str, str]) -> None:
    """Every file verified at the final path: write the manifest (last) and SHA256SUMS."""
    dest = Path(cfg["dest"])
    entries = {}
    for f in cfg["files"]:
        stat = final(cfg, f["path"]).stat()
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
    shutil.rmtree(f"{dest}.incoming", ignore_errors=True)
    log(f"complete: {len(entries)} file(s) verified at {dest}")


class Upstream:
    """The node this one pulls from, over the fan-out key: its sshd runs only ``rrsync -ro
    <dest>``, so every remote path is relative to its weights folder. One SSH connection,
    multiplexed, carries every poll and pull (closed at the end)."""

    def __init__(self, source: str, key: str, known_hosts: str, work: Path) -> None:
        self.source = source
        self.work = work
        self.ssh = shlex.join(
            [
                "ssh",
                "-i",
                key,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                # AES-GCM first: far less CPU than ChaCha20 where the CPU has AES instructions
                "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com",
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={work}/ssh-%C",
                "-o",
                "ControlPersist=20",
            ]
        )
        self.last_error = ""

    def pull(self, names: list[str], into: Path, timeout: float) -> bool:
        """rsync these files (a list, so any name travels as data) from the upstream into
        ``into``; a file it lacks is skipped. False (and last_error) when rsync fails."""
        listing = self.work / "files-from"
        listing.write_text("".join(f"{n}\n" for n in names))
        command = [
            "rsync",
            "-t",  # times only (no -a): no link, device, owner or mode comes from the peer
            "--ignore-missing-args",
            f"--files-from={listing}",
            "-e",
            self.ssh,
            f"{self.source}:/",
            f"{into}/",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.last_error = f"rsync took more than {timeout:.0f}s"
            return False
        self.last_error = result.stderr.strip()[-300:]
        return result.returncode == 0

    def poll(
        self, names: list[str], into: Path, run: str, listed: set[str], timeout: float
    ) -> tuple[list[str] | None, str | None]:
        """One round trip: the upstream's progress and failure files, and whichever of
        ``names`` it already holds at its final path (only verified files ever are; rsync's
        quick check skips one already here unchanged). Returns (the names it calls ready or
        None, why it failed or None)."""
        status = [into / READY, into / FAILED]
        for path in status:
            path.unlink(missing_ok=True)
        if not self.pull([READY, FAILED, *names], into, timeout):
            return None, None
        ready, failed = (p.read_text() if p.exists() else "" for p in status)
        for path in status:
            path.unlink(missing_ok=True)
        return parse_progress(ready, run, listed), failure_of(failed, run)

    def close(self) -> None:
        """End the shared SSH connection (its socket path hashes the same user@host)."""
        subprocess.run(
            ["ssh", "-o", f"ControlPath={self.work}/ssh-%C", "-O", "exit", self.source],
            capture_output=True,
            timeout=10,
            check=False,
        )


class Pace:
    """When to ask the upstream again. Once its files have come at a measurable rate (bytes a
    second since the first news), the next one is due ``size / rate`` after the last news: ask a
    little before. Until then, and while a due file is late, wait twice as long each time
    nothing is new (from POLL_S to POLL_MAX_S): the nodes deeper in the tree, which can get
    nothing before their upstream does, then cost the group little CPU."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None
        self.last = (time.monotonic(), 0)
        self.idle = POLL_S

    def news(self, ready_bytes: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, ready_bytes)
        self.last = (now, ready_bytes)
        self.idle = POLL_S

    def pause(self, next_size: int) -> float:
        if self.first is not None and self.last[0] > self.first[0]:
            rate = (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])
            due = self.last[0] + next_size / rate - time.monotonic() if rate > 0 else 0.0
            if due > POLL_S:
                return min(POLL_MAX_S, max(POLL_S, 0.8 * due))
        backoff, self.idle = self.idle, min(POLL_MAX_S, 2 * self.idle)
        return backoff


def wait_limit(pending: list[dict[str, Any]]) -> float:
    """Seconds a receiver waits for news of its upstream before it gives up."""
    return WAIT_S + max((f["size"] for f in pending), default=0) / WAIT_MIN_BYTES_PER_S


def stream(cfg: dict[str, Any], run: str, upstream: Upstream, from_complete: bool) -> int:
    """Receive every file from the upstream as it becomes ready there (or at once, from a
    node already complete), verify, place, announce; then write the manifest."""
    by_name = {f["path"]: f for f in cfg["files"]}
    staging = Path(f"{cfg['dest']}.incoming")
    staging.mkdir(parents=True, exist_ok=True)
    progress = Progress(cfg, run)
    sums = held_files(cfg)
    progress.start(list(sums))
    bad: dict[str, int] = {}
    attempts = int(cfg.get("attempts", 4))
    last_news = time.monotonic()
    pace, seen = Pace(), 0
    try:
        while len(sums) < len(by_name):
            pending = [f for f in cfg["files"] if f["path"] not in sums]
            names = [f["path"] for f in pending]
            limit = 60 + sum(f["size"] for f in pending) / WAIT_MIN_BYTES_PER_S
            if from_complete:
                if not upstream.pull(names, staging, limit):
                    log(f"pull from {upstream.source} failed: {upstream.last_error}")
                ready: list[str] | None = list(by_name)
            else:
                ready, failed = upstream.poll(names, staging, run, set(by_name), limit)
                if failed:
                    raise Failed(f"upstream {upstream.source} failed: {failed}")
            if ready and len(ready) > seen:
                seen = len(ready)
                pace.news(sum(by_name[n]["size"] for n in ready))
            # A file the upstream has announced is judged now; one that came before its
            # announcement (the progress file was read first) waits in staging for it.
            for name in [n for n in names if n in (ready or [])]:
                arrived = staged(cfg, name).is_file()
                sha256 = land(cfg, by_name[name])
                if sha256:
                    sums[name] = sha256
                    progress.add(name)
                    last_news = time.monotonic()
                    log(f"{name}: verified, from {upstream.source}")
                elif arrived:
                    log(f"{name}: the copy from {upstream.source} does not match the hub")
                    bad[name] = bad.get(name, 0) + 1
                    if bad[name] >= attempts:
                        why = f"{name} from {upstream.source} never matched the hub's digest"
                        raise Failed(why)
            if len(sums) == len(by_name):
                break
            if time.monotonic() - last_news > wait_limit(pending):
                held = len(ready) if ready is not None else "no"
                raise Failed(
                    f"nothing new from upstream {upstream.source} for "
                    f"{time.monotonic() - last_news:.0f}s ({held} of {len(by_name)} files "
                    f"ready there; last rsync: {upstream.last_error or 'ok'})"
                )
            waiting = [f["size"] for f in cfg["files"] if f["path"] not in (ready or [])]
            time.sleep(0 if from_complete else pace.pause(min(waiting, default=0)))
    except (Failed, UnsafePath) as error:
        log(f"stopped: {error}")
        progress.fail(str(error))
        return 1
    finish(cfg, sums)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="weights-pull")
    parser.add_argument("command", choices=["seed", "stream"])
    parser.add_argument("config")
    parser.add_argument("--run", default="0")
    parser.add_argument("--from", dest="source")
    parser.add_argument("--from-complete", action="store_true")
    parser.add_argument("--key")
    parser.add_argument("--known-hosts")
    args = parser.parse_args(argv[1:])
    cfg = json.loads(Path(args.config).read_text())
    try:
        prove_names(cfg)
    except UnsafePath as error:
        log(f"refused, nothing touched: the file list names {error}")
        return UNSAFE_EXIT
    if args.command == "seed":
        return seed(cfg, args.run)
    if not (args.source and args.key and args.known_hosts):
        parser.error("stream needs --from, --key and --known-hosts")
    with tempfile.TemporaryDirectory(prefix="ironserve-stream-") as work:
        upstream = Upstream(args.source, args.key, args.known_hosts, Path(work))
        try:
            return stream(cfg, args.run, upstream, args.from_complete)
        finally:
            upstream.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
