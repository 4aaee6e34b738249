"""roles/weights: one download from the hub on the group's seed (its head), verified against the
hub's digests, then a doubling tree of rsync-over-SSH pulls between nodes, each verified with
`sha256sum -c` before it is moved into place.

Everything is decided before the first operation, by the first host to get here, for every host
of the run: the hub's metadata (once per group, on the control machine), each node's state (one
fact), the disk check on every node (a refusal stops the whole run, naming host, path, need and
free), and the fan-out schedule. A node already complete adds no operation at all, so a second
run changes nothing and `--dry` shows nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
import weakref
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra import logger
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import files, server

from ironserve.deploy.context import HostPlan
from ironserve.operations import secrets
from ironserve.plan.derived import NodeDisk
from ironserve.roles import FACT_TIMEOUT_S, plan_of, run_of
from ironserve.roles.weights.defaults import DEFAULTS, WeightsData
from ironserve.weights import client_lock, node_pull
from ironserve.weights.facts import WeightsState
from ironserve.weights.manifest import complete, missing_bytes
from ironserve.weights.metadata import RepoMeta, WeightsError, hub_metadata, read_token
from ironserve.weights.schedule import fanout, rounds_for

SCRIPT_SOURCE = Path(node_pull.__file__)


@dataclass
class GroupWeights:
    """What the run decided for one serving group."""

    meta: RepoMeta
    dest: str
    seed: str
    states: dict[str, dict[str, Any]]
    complete: set[str]
    rounds: list[list[tuple[str, str]]]
    known_hosts: str = ""
    key: Path | None = None
    refusals: list[str] = field(default_factory=list)

    @property
    def pullers(self) -> set[str]:
        """Nodes that pull a copy (they open the SSH connections): the only ones holding the
        fan-out's private key."""
        return {receiver for pairs in self.rounds for receiver, _ in pairs}

    @property
    def sources(self) -> set[str]:
        """Nodes that serve a copy: the only ones whose authorized_keys accept the fan-out key."""
        return {source for pairs in self.rounds for _, source in pairs}


_RUNS: weakref.WeakKeyDictionary[Any, dict[str, GroupWeights]] = weakref.WeakKeyDictionary()


def pull_config(
    meta: RepoMeta, dest: str, endpoint: str | None, token_file: str | None, attempts: int
) -> str:
    """The node script's config (JSON, no secret: the token is a path to a 0600 file)."""
    doc = meta.as_dict() | {
        "dest": dest,
        "endpoint": endpoint,
        "token_file": token_file,
        "attempts": attempts,
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def receive_command(
    source_ip: str, user: str, dest: str, key: str, known_hosts: str, script: str, config: str
) -> str:
    """A receiver pulls the source's verified copy into staging, checks it, moves it in place.

    The source's key runs only ``rrsync -ro <dest>`` (authorized_line): the remote path is
    relative to that folder, so the pull asks for its root."""
    staging = f"{dest}.incoming"
    ssh = (
        f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={known_hosts}"
    )
    q = shlex.quote
    return " && ".join(
        [
            f"mkdir -p {q(staging)}",
            f"rsync -a --partial --delete --exclude=.cache -e {q(ssh)} "
            f"{q(f'{user}@{source_ip}:/')} {q(staging + '/')}",
            f"cd {q(staging)}",
            "sha256sum -c --quiet SHA256SUMS",
            f"python3 {q(script)} place {q(config)}",
        ]
    )


def fanout_key(directory: str, group: str, ips: list[str]) -> Path:
    """The cluster's fan-out key pair on the control machine (made once, ssh-keygen)."""
    tag = hashlib.sha256(" ".join([group, *sorted(ips)]).encode()).hexdigest()[:12]
    key = Path(directory).expanduser() / f"{group}-{tag}" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # pyinfra loads the deploy file for every host at once (greenlets): two hosts may get
        # here together. Each makes its pair aside; the first to finish puts it in place (no
        # greenlet switch between the check and the renames), the others use that one.
        with tempfile.TemporaryDirectory(dir=key.parent) as aside:
            new = Path(aside) / key.name
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"ironserve-weights-{group}",
                    "-f",
                    str(new),
                ],
                check=True,
            )
            if not key.exists():
                os.replace(f"{new}.pub", f"{key}.pub")
                os.replace(new, key)
    return key


def authorized_line(
    public_key: str, ips: list[str], group: str, dest: str, rrsync: str = "/usr/bin/rrsync"
) -> str:
    """Only the cluster's nodes may use the key, and only to read the weights folder: sshd runs
    the forced command ``rrsync -ro <dest>`` whatever the client asks (no shell, no forwarding,
    no pty), and rrsync accepts only a read-only rsync server inside ``dest``.

    sshd runs the command with the user's shell (hence shlex), and in the option's double quotes
    reads only ``\\"`` as an escape: a backslash or a control character could not be written
    faithfully, so such a folder is refused."""
    if any(c == "\\" or ord(c) < 32 for c in dest + rrsync):
        raise ValueError(f"weights folder {dest!r}: no backslash or control character allowed")
    forced = shlex.join([rrsync, "-ro", dest]).replace('"', '\\"')
    return (
        f'command="{forced}",from="{",".join(ips)}",restrict '
        f"{public_key.strip()} ironserve-weights-{group}"
    )


def disk_refusal(
    name: str, node_state: dict[str, Any], planned: NodeDisk, held: int, dest: str
) -> str | None:
    """The node's refusal when its filesystem lacks room: the Plan's disk need of the node
    (ironserve.rules.disk, as preflight and health judge it), less the ``held`` bytes the node
    already has of the weights (verified files and staging)."""
    need = planned.need(held)
    free = int(node_state["free_bytes"])
    if need.enough(free):
        return None
    return (
        f"{name}: disk: {node_state['free_path']} has {free} bytes free; the weights need "
        f"{need.need_bytes} ({need.explain()}) for {dest}"
    )


def _weights_state(node: Any, dest: str) -> dict[str, Any]:
    """The WeightsState fact of one node (its own hub-client venv)."""
    venv = WeightsData.of(node).weights_client_venv
    found: dict[str, Any] = node.get_fact(
        WeightsState, dest=dest, venv=venv, _timeout=FACT_TIMEOUT_S
    )
    return dict(found)


def _decide(run: Any) -> dict[str, GroupWeights]:
    plans: dict[str, HostPlan] = {h.name: plan_of(state, h) for h in state.inventory}
    groups: dict[str, GroupWeights] = {}
    refusals: list[str] = []
    for hp in plans.values():
        group = hp.group
        if group.name in groups:
            continue
        h0 = state.inventory.get_host(group.head.name)
        endpoint = group.hub.endpoint
        try:
            token = read_token(group.hub.token_file)
            meta = hub_metadata(
                group.hub.kind, endpoint, group.model.id, group.model.revision, token
            )
        except (WeightsError, OSError) as error:
            raise DeployError(f"weights: group {group.name}: {error}") from error
        dest = hp.plan.context.weights_path
        states = {
            n.name: _weights_state(state.inventory.get_host(n.name), dest) for n in group.nodes
        }
        done = {n for n, s in states.items() if complete(meta, s)}
        for n in group.nodes:
            refusal = disk_refusal(
                n.name,
                states[n.name],
                hp.plan.disk_of(n.name),
                meta.total_bytes - missing_bytes(meta, states[n.name]),
                dest,
            )
            if refusal:
                refusals.append(refusal)
        seed = group.head.name
        holders = [seed] + [n.name for n in group.nodes if n.name in done and n.name != seed]
        receivers = [n.name for n in group.nodes if n.name not in done and n.name != seed]
        gw = GroupWeights(meta, dest, seed, states, done, fanout(holders, receivers))
        if gw.rounds:
            ips = [str(n.node.ip) for n in group.nodes]
            key_dir = WeightsData.of(h0).weights_fanout_key_dir  # on the control machine
            gw.key = fanout_key(key_dir, group.name, ips)
            gw.known_hosts = "".join(
                f"{n.node.ip} {states[n.name]['host_key']}\n"
                for n in group.nodes
                if states[n.name].get("host_key")
            )
        for member in group.nodes:
            groups[member.name] = gw
        groups[group.name] = gw
    if refusals:
        raise DeployError(
            "weights: refused before any download:\n  "
            + "\n  ".join(refusals)
            + "\nRemedy: free space (or set model_weights_dir to a larger filesystem)."
        )
    return groups


def group_weights() -> GroupWeights:
    run = run_of(state)
    if run not in _RUNS:
        _RUNS[run] = _decide(run)
    return _RUNS[run][host.name]


@deploy("Weights", data_defaults=DEFAULTS)
def deploy_weights() -> None:
    hp = plan_of(state, host)
    group = hp.group
    gw = group_weights()
    data = WeightsData.of(host)
    cfg_dir = f"{data.weights_config_dir}/{group.name}"
    script, config = data.weights_script, f"{cfg_dir}/weights.json"
    mb = gw.meta.total_bytes / 2**20
    if host.name in gw.complete:
        logger.info(f"{host.name}: {gw.meta.repo_id} verified ({mb:.0f} MiB at {gw.dest})")
    else:
        files.put(name="Weights pull script", src=str(SCRIPT_SOURCE), dest=script, mode="755")
    is_seed = host.name == gw.seed and host.name not in gw.complete
    token_path = f"{cfg_dir}/hub-token" if group.hub.token_file else None
    if host.name not in gw.complete:
        files.put(
            name="Weights pull config",
            src=StringIO(
                pull_config(
                    gw.meta,
                    gw.dest,
                    group.hub.endpoint,
                    token_path,
                    data.weights_attempts,
                )
            ),
            dest=config,
            mode="644",
        )
    if is_seed:
        _seed_ops(gw, token_path, script, config)
    key_path, known_hosts = f"{cfg_dir}/fanout_key", f"{cfg_dir}/known_hosts"
    if gw.rounds and gw.key is not None:
        _fanout_ops(gw, group.name, [str(n.node.ip) for n in group.nodes], key_path, known_hosts)
    by_name = {n.name: str(n.node.ip) for n in group.nodes}
    user = host.data.get("ssh_user") or "root"
    for index in host.loop(range(rounds_for(len(group.nodes)))):
        if index >= len(gw.rounds):
            continue
        source = dict(gw.rounds[index]).get(host.name)
        # Every host of the group adds each round (skipped where it pulls nothing): pyinfra
        # orders operations per host, so a holder that pulls nothing would otherwise run its
        # cleanup (the authorized_keys line removed) before the receivers' rounds.
        server.shell(
            name=f"Weights: fan-out round {index + 1} (each receiver pulls from a holder)",
            commands=[
                receive_command(
                    by_name[source], user, gw.dest, key_path, known_hosts, script, config
                )
                if source is not None
                else "true"
            ],
            _if=_always if source is not None else _never,
        )
    if not data.weights_keep_fanout_key:
        _cleanup_ops(gw, group.name, token_path if is_seed else None, key_path, known_hosts)


def _always() -> bool:
    return True


def _never() -> bool:
    return False


def client_outdated(node_state: dict[str, Any], pins: list[client_lock.Pin]) -> list[str]:
    """The lock's pins a node's hub-client venv lacks (all of them: no venv)."""
    if not node_state.get("client"):
        return sorted(f"{p.name}=={p.version}" for p in pins)
    env = node_state.get("client_env") or {}
    return client_lock.outdated(pins, env, node_state.get("client_versions") or {})


def _seed_ops(gw: GroupWeights, token_path: str | None, script: str, config: str) -> None:
    data = WeightsData.of(host)
    venv = data.weights_client_venv
    lock_text, pins = client_lock.read(data.weights_client_lock)
    if client_outdated(gw.states[host.name], pins):
        # Beside the venv (`venv --clear` empties the venv itself): a venv not as locked is
        # made anew, so no package of an older lock stays.
        lock = f"{venv}.lock.txt"
        files.put(name="Hub client lock", src=StringIO(lock_text), dest=lock, mode="644")
        index = data.weights_pip_index_url
        pip = f"{shlex.quote(venv + '/bin/pip')} install -q --require-hashes --no-deps"
        if index:
            pip += f" --index-url {shlex.quote(str(index))}"
        server.shell(
            name="Install the hub client",
            commands=[
                f"python3 -m venv --clear {shlex.quote(venv)} && {pip} -r {shlex.quote(lock)}"
            ],
        )
    token_file = plan_of(state, host).group.hub.token_file
    if token_path and token_file:
        secrets.secret_file(
            name="Hub token (0600)",
            path=token_path,
            content=Path(token_file).expanduser().read_text(),
        )
    server.shell(
        name=f"Weights: download {gw.meta.repo_id} once ({gw.meta.total_bytes} bytes)",
        commands=[
            f"{shlex.quote(venv)}/bin/python {shlex.quote(script)} seed {shlex.quote(config)}"
        ],
    )


def _authorized_keys() -> str:
    user = host.data.get("ssh_user") or "root"
    home = "/root" if user == "root" else f"/home/{user}"
    return f"{home}/.ssh/authorized_keys"


def _fanout_ops(
    gw: GroupWeights, group: str, ips: list[str], key_path: str, known_hosts: str
) -> None:
    """The private key only where a pull starts, the restricted line only where one is served."""
    assert gw.key is not None
    if host.name in gw.pullers:
        secrets.secret_file(name="Fan-out key (0600)", path=key_path, content=gw.key.read_text())
        files.put(
            name="Fan-out known hosts",
            src=StringIO(gw.known_hosts),
            dest=known_hosts,
            mode="644",
        )
    if host.name in gw.sources:
        public = Path(f"{gw.key}.pub").read_text()
        files.line(
            name="Fan-out key authorized (cluster nodes only, read-only rsync of the weights)",
            path=_authorized_keys(),
            line=f".* ironserve-weights-{group}$",
            replace=authorized_line(
                public.split(" ironserve-weights")[0],
                ips,
                group,
                gw.dest,
                WeightsData.of(host).weights_rrsync,
            ),
        )


def _cleanup_ops(
    gw: GroupWeights, group: str, token_path: str | None, key_path: str, known_hosts: str
) -> None:
    """After the last round (pyinfra runs each operation on every host before the next): the
    fan-out key, its authorized_keys line and the hub token exist only for the transfer."""
    # Plain rm: at prepare time these files do not exist yet, and the operations exist only
    # in a run that downloads or fans out (a converged run has none).
    if token_path:
        server.shell(
            name="Remove the hub token after the download",
            commands=[f"rm -f -- {shlex.quote(token_path)}"],
        )
    if host.name in gw.pullers:
        server.shell(
            name="Remove the fan-out key after the pulls",
            commands=[f"rm -f -- {shlex.quote(key_path)} {shlex.quote(known_hosts)}"],
        )
    if host.name in gw.sources:
        files.line(
            name="Remove the fan-out key's authorized_keys line after the pulls",
            path=_authorized_keys(),
            line=f".* ironserve-weights-{group}$",
            present=False,
        )
