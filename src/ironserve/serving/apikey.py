"""The API key of a serving group: read from ``serving_api_key_file`` (0600), or generated once
into a 0600 file on the control machine when the inventory names none (the key is on by default).

A key file holds the key alone, or one ``NAME=key`` line (an env file); either way the key is
what follows the last ``=`` of its first non-empty line. The key reaches containers only through
the node's 0600 env file (:func:`secrets_env`), never a command line.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ironserve.engines.common import IRONSERVE_API_KEY_ENV, VLLM_API_KEY_ENV

if TYPE_CHECKING:
    from ironserve.plan.derived import ApiKeyLocation

KEY_BYTES = 32  # token_urlsafe: 43 characters, no "=" (so the env-file form stays unambiguous)
# RFC 6750's b64token: what an ``Authorization: Bearer`` header may carry.
BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class ApiKeyError(ValueError):
    """The key file is missing, empty, or readable by others."""


def check_bearer_token(key: str) -> str:
    """``key`` when a client can send it as ``Authorization: Bearer <key>`` (RFC 6750)."""
    if not BEARER_TOKEN.fullmatch(key):
        raise ApiKeyError(
            "an API key is sent as 'Authorization: Bearer <key>': letters, digits and "
            "-._~+/ only, then any '=' (RFC 6750)"
        )
    return key


def parse_key(text: str) -> str:
    """The key in a key file's text: the first non-empty line, after its last ``=``."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line.rsplit("=", 1)[-1].strip()
    return ""


def read_key(path: Path, what: str = "the API key") -> str:
    """The key in ``path``; refuses a file other users can read (secrets are 0600)."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text()
    except OSError as error:
        raise ApiKeyError(f"{path}: {error.strerror or error}") from error
    if mode & 0o077:
        raise ApiKeyError(f"{path} is mode {mode:04o}; a file holding {what} must be 0600")
    key = parse_key(text)
    if not key:
        raise ApiKeyError(f"{path} holds no {what.removeprefix('the ')}")
    return key


def write_new_key(path: Path) -> str:
    """Create ``path`` (0600, parents 0700) holding a fresh random key; the key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_urlsafe(KEY_BYTES)
    # O_EXCL: never overwrite a key a running endpoint already uses.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def generated_key_path(directory: str, group: str, addresses: list[str]) -> Path:
    """Where the key of a group without ``serving_api_key_file`` lives on the control machine:
    one file per group and set of node addresses, so two clusters never share a key."""
    tag = hashlib.sha256(" ".join([group, *sorted(addresses)]).encode()).hexdigest()[:12]
    return Path(directory).expanduser() / f"{group}-{tag}.key"


def read_plan_key(location: ApiKeyLocation) -> str:
    """The group's key from the control machine's file the Plan names (``Plan.api_key``): the
    one reader health, bench, lab status and the CLI share. Raises ApiKeyError."""
    path = location.control_path
    if location.generated and not path.exists():
        raise ApiKeyError(
            f"{path} does not exist: no serving_api_key_file, and no deploy from this machine "
            "generated the key yet"
        )
    return read_key(path)


def ensure_plan_key(location: ApiKeyLocation) -> tuple[str, Path, bool]:
    """(key, file, generated now): a deploy's read of the Plan's key file, generating the key
    into it when the group has no ``serving_api_key_file`` and none was made yet."""
    path = location.control_path
    if location.generated and not path.exists():
        return write_new_key(path), path, True
    key = read_key(path)
    try:
        check_bearer_token(key)
    except ApiKeyError as error:
        raise ApiKeyError(f"{path}: {error}") from error
    return key, path, False


def secrets_env(key: str) -> str:
    """The node's env file (``--env-file``): vLLM reads VLLM_API_KEY itself, SGLang's entrypoint
    wrapper reads IRONSERVE_API_KEY (engines/sglang.py)."""
    return f"{VLLM_API_KEY_ENV}={key}\n{IRONSERVE_API_KEY_ENV}={key}\n"


def redact(text: str, *secrets: str) -> str:
    """``text`` with every secret replaced by a placeholder: engine logs quoted in ironserve's
    output (SGLang logs its ``server_args``, the API key included; sgl-project/sglang#37457)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<secret>")
    return text


def secrets_revision(group: str, content: str) -> str:
    """A short digest of the env file for the containers' spec label: a changed key recreates
    the containers that read it. Salted with the group and truncated; the key is 256 random bits
    (or the operator's own), so the label gives nothing away."""
    return hashlib.sha256(f"ironserve-secrets/{group}/{content}".encode()).hexdigest()[:16]
