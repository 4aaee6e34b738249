"""The SSH keys of a TensorRT-LLM group's MPI worlds (engines/trtllm.py ``mpi_worlds``: a
multi-node trtllm group, or each Dynamo TensorRT-LLM worker over nodes): mpirun in the world's
first container reaches an SSH server in each other node's container. Two ed25519 pairs, made
once on the control machine into one 0600 file beside the generated API keys
(``Plan.mpi_keys``, one per group and node set, so two clusters never share them): the client
key mpirun uses, and the host key every other node's server presents (the first node checks it
strictly against known_hosts). Each node gets only its side, 0600 in the group's ``mpi`` folder
(roles/engine, by ``operations/secrets.py``): a world's first node the client key and
known_hosts, the others the host key and authorized_keys."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ironserve.engines.base import LaunchContext
from ironserve.serving.apikey import ApiKeyError

CLIENT_KEY = "id_ed25519"
HOST_KEY = "ssh_host_ed25519_key"
KNOWN_HOSTS = "known_hosts"
AUTHORIZED_KEYS = "authorized_keys"


@dataclass(frozen=True)
class MpiKeys:
    client: str  # OpenSSH private key (the head's mpirun)
    client_public: str
    host: str  # OpenSSH private key (the workers' sshd)
    host_public: str


def _new_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public


def ensure_keys(path: Path) -> tuple[MpiKeys, bool]:
    """(the group's keys, made now): read from ``path`` (0600), or made into it (0600, parents
    0700; never over an existing file). Raises ApiKeyError for a file others can read."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        client, client_public = _new_pair()
        host, host_public = _new_pair()
        keys = MpiKeys(client, client_public, host, host_public)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(keys.__dict__, handle)
        return keys, True
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ApiKeyError(f"{path} is mode {mode:04o}; a file holding SSH keys must be 0600")
    try:
        return MpiKeys(**json.loads(path.read_text())), False
    except (ValueError, TypeError) as error:
        raise ApiKeyError(f"{path}: not the MPI keys ironserve wrote ({error})") from error


def node_files(ctx: LaunchContext, keys: MpiKeys, node: str) -> list[tuple[str, str]]:
    """(path on the node, content) of what ``node`` holds in the group's mpi folder: the first
    node of an MPI world (engines/trtllm.py ``mpi_worlds``) the client key and the others' host
    keys, every other node of it the host key and the authorized client key, a node in no MPI
    world nothing."""
    from ironserve.engines.trtllm import MPI_SSH_PORT, mpi_dir, mpi_worlds

    folder = mpi_dir(ctx)
    for world in mpi_worlds(ctx):
        names = [n.name for n in world]
        if node == names[0]:
            known = "".join(f"[{n.address}]:{MPI_SSH_PORT} {keys.host_public}\n" for n in world[1:])
            return [(f"{folder}/{CLIENT_KEY}", keys.client), (f"{folder}/{KNOWN_HOSTS}", known)]
        if node in names:
            return [
                (f"{folder}/{HOST_KEY}", keys.host),
                (f"{folder}/{AUTHORIZED_KEYS}", keys.client_public + "\n"),
            ]
    return []
