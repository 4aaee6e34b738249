"""What the hub says a model revision holds: every file's path, size and digest, read on the
control machine with the real client (huggingface_hub or modelscope) before any SSH."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ironserve.errors import InputError, Problem
from ironserve.weights.names import first_unsafe


class WeightsError(RuntimeError):
    """A hub or transfer problem the operator must act on (the message says how): exit 1."""


class WeightsInputError(WeightsError):
    """Unusable input, found before any download or node: a hub endpoint that is not a URL, a
    token file that cannot be read, a listing with an unsafe file name. Exit 2."""


@dataclass(frozen=True)
class WeightFile:
    path: str
    size: int
    sha256: str | None = None  # LFS files (HF), every file (ModelScope)
    git_sha1: str | None = None  # small non-LFS files on HF: the git blob id

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RepoMeta:
    kind: str  # huggingface | modelscope
    repo_id: str
    revision: str
    files: tuple[WeightFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "files": [f.as_dict() for f in self.files],
        }


def token_message(kind: str, repo_id: str) -> str:
    which = "HF_TOKEN" if kind == "huggingface" else "the ModelScope token"
    return (
        f"{repo_id} is gated: set hub_token_file to a 0600 file holding {which} "
        "(an account that accepted the model's licence)"
    )


def read_token(path: Path | None) -> str | None:
    """The token in ``hub_token_file``. The error never shows the path: an operator who put the
    token itself in that field must not see it printed."""
    if path is None:
        return None
    try:
        return Path(path).expanduser().read_text().strip() or None
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else "not text"
        raise WeightsInputError(
            f"hub_token_file cannot be read ({why}; its value is not shown, in case it is the "
            "token itself): set it to the path of a 0600 file holding the token"
        ) from None


def hf_files(siblings: list[Any]) -> tuple[WeightFile, ...]:
    """HfApi.model_info(files_metadata=True).siblings -> files (sha256 for LFS, else blob id)."""
    files = []
    for s in siblings:
        lfs = getattr(s, "lfs", None)
        sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
        if s.size is None:
            raise WeightsError(f"the hub gave no size for {s.rfilename!r}")
        files.append(WeightFile(s.rfilename, int(s.size), sha256, None if sha256 else s.blob_id))
    return tuple(sorted(files, key=lambda f: str(f.path)))


def modelscope_files(entries: list[Any]) -> tuple[WeightFile, ...]:
    """modelscope_hub's FileInfo list (recursive) -> files (ModelScope gives sha256 for all)."""
    files = [
        WeightFile(e.path, int(e.size), getattr(e, "sha256", None) or None)
        for e in entries
        if getattr(e, "type", "blob") != "tree"
    ]
    return tuple(sorted(files, key=lambda f: str(f.path)))


def one_line(error: BaseException) -> str:
    """An exception's message on one line, bounded (clients put server pages in theirs)."""
    return " ".join(str(error).split())[:300]


def hub_label(kind: str, endpoint: str | None) -> str:
    """How errors name the hub: its endpoint, or the client's default."""
    return f"{kind} hub {endpoint or 'default endpoint'}"


def check_endpoint(kind: str, endpoint: str | None) -> None:
    """An endpoint must be an http(s) URL with a host (WeightsInputError before any request)."""
    if endpoint is None:
        return
    try:
        url = urlsplit(endpoint)
        scheme, host = url.scheme, url.hostname
    except ValueError:  # e.g. an unbalanced '[' in the host
        scheme, host = "", None
    if scheme not in ("http", "https") or not host or any(c.isspace() for c in endpoint):
        raise WeightsInputError(f"{kind} hub endpoint {endpoint!r} is not an http(s) URL")


def check_names(kind: str, endpoint: str | None, meta: RepoMeta) -> RepoMeta:
    """``meta`` when every listed file name is safe (weights/names.py), else WeightsInputError
    naming the hub and the first bad name (repr: a newline shows as \\n, on one line)."""
    found = first_unsafe(f.path for f in meta.files)
    if found is None:
        return meta
    name, why, count = found
    more = f" (and {count - 1} more)" if count > 1 else ""
    raise WeightsInputError(
        f"{hub_label(kind, endpoint)}: {meta.repo_id}@{meta.revision} lists the file name "
        f"{name!r}, which {why}{more}; refused before any download or node was touched"
    )


def hub_metadata(
    kind: str, endpoint: str | None, repo_id: str, revision: str, token: str | None
) -> RepoMeta:
    """The revision's file list from the hub, every name checked (raises WeightsError with the
    remedy; WeightsInputError for a bad endpoint or an unsafe name)."""
    check_endpoint(kind, endpoint)
    fetch = _modelscope if kind == "modelscope" else _huggingface
    try:
        meta = fetch(endpoint, repo_id, revision, token)
    except WeightsError:
        raise
    except Exception as error:  # the client's network errors: one line, never a traceback
        raise WeightsError(
            f"{hub_label(kind, endpoint)}: {repo_id}@{revision} could not be read "
            f"({type(error).__name__}: {one_line(error)}); check that this machine reaches the hub"
        ) from error
    return check_names(kind, endpoint, meta)


def _huggingface(endpoint: str | None, repo_id: str, revision: str, token: str | None) -> RepoMeta:
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    api = HfApi(endpoint=endpoint.rstrip("/") if endpoint else None, token=token or False)
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except GatedRepoError as error:
        raise WeightsError(token_message("huggingface", repo_id)) from error
    except HfHubHTTPError as error:
        raise WeightsError(
            f"{hub_label('huggingface', endpoint)}: {repo_id}@{revision}: {one_line(error)}"
        ) from error
    return RepoMeta("huggingface", repo_id, revision, hf_files(list(info.siblings or [])))


def _modelscope(endpoint: str | None, repo_id: str, revision: str, token: str | None) -> RepoMeta:
    # modelscope_hub (the client under modelscope >= 1.40): its FileInfo keeps each file's
    # sha256, which modelscope's legacy get_model_files() drops.
    from modelscope_hub import (
        AuthenticationError,
        HubApi,
        HubError,
        PermissionDeniedError,
        RepoType,
    )

    api = HubApi(endpoint=endpoint.rstrip("/") if endpoint else None, token=token)
    ms_revision = "master" if revision == "main" else revision
    # Its retries log a warning line each; the error that follows says it all, in one line.
    client_log = logging.getLogger("modelscope_hub")
    level = client_log.level
    client_log.setLevel(logging.ERROR)
    try:
        entries = api.list_repo_files(repo_id, RepoType.MODEL, revision=ms_revision)
    except (AuthenticationError, PermissionDeniedError) as error:
        raise WeightsError(token_message("modelscope", repo_id)) from error
    except HubError as error:
        raise WeightsError(
            f"{hub_label('modelscope', endpoint)}: {repo_id}@{ms_revision}: {one_line(error)}"
        ) from error
    finally:
        client_log.setLevel(level)
    return RepoMeta("modelscope", repo_id, ms_revision, modelscope_files(list(entries)))


def check_token_file(host: str, path: Path | None) -> None:
    """A token file must exist and be 0600 (InputError naming host and field)."""
    if path is None:
        return
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError([Problem(host, "hub_token_file", f"{p} does not exist")])
    if p.stat().st_mode & 0o077:
        raise InputError([Problem(host, "hub_token_file", f"{p} must be mode 0600")])
