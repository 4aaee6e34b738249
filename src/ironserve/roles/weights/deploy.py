"""roles/weights: one download from the hub on the group's seed (its head), verified against the
hub's digests, streamed through the group as it arrives: one operation on every node, where the
seed downloads file by file and every other node pulls each file over rsync-over-SSH from its
upstream (weights/schedule.py: a tree of fan-out 2) as soon as the upstream has verified it, and
verifies it against the hub's digest before it reaches the final path.

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
import secrets as random_ids
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
from ironserve.weights.schedule import upstreams

SCRIPT_SOURCE = Path(node_pull.__file__)


@dataclass
class GroupWeights:
    """What the run decided for one serving group."""

    meta: RepoMeta
    dest: str
    seed: str
    states: dict[str, dict[str, Any]]
    complete: set[str]
    # receiver -> the node it streams from; the seed downloads when it is not in here nor complete
    upstream: dict[str, str]
    # this run's id: a node's progress file from an earlier run is ignored by its downstream
    run: str = ""
    known_hosts: str = ""
    key: Path | None = None
    refusals: list[str] = field(default_factory=list)

    @property
    def downloads(self) -> bool:
        """The seed reads the hub: no node of the group holds the weights yet."""
        return not self.complete and self.seed not in self.upstream

    @property
    def pullers(self) -> set[str]:
        """Nodes that pull a copy (they open the SSH connections): the only ones holding the
        fan-out's private key."""
        return set(self.upstream)

    @property
    def sources(self) -> set[str]:
        """Nodes that serve a copy: the only ones whose authorized_keys accept the fan-out key."""
        return set(self.upstream.values())


_RUNS: weakref.WeakKeyDictionary[Any, dict[str, GroupWeights]] = weakref.WeakKeyDictionary()
# One id per run, taken without a greenlet switch: pyinfra prepares every host at once, so two
# hosts may both be deciding (the hub and the facts yield); they must share the run's id, or a
# receiver would ignore its upstream's progress file.
_RUN_IDS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


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


def seed_command(venv: str, script: str, config: str, run: str) -> str:
    """The seed's part of the stream: the download with the hub client of its venv."""
    q = shlex.quote
    return f"{q(venv + '/bin/python')} {q(script)} seed {q(config)} --run {q(run)}"


def stream_command(
    script: str,
    config: str,
    run: str,
    source: str,
    source_complete: bool,
    key: str,
    known_hosts: str,
) -> str:
    """A receiver's part of the stream (the node's python3, stdlib only): pull each file from
    ``source`` (user@ip; its key runs only ``rrsync -ro <dest>``) as it is ready there, verify it
    against the hub's digest, place it. Every value quoted; no secret on the command line."""
    q = shlex.quote
    words = [
        f"python3 {q(script)} stream {q(config)}",
        f"--run {q(run)} --from {q(source)}",
        f"--key {q(key)} --known-hosts {q(known_hosts)}",
    ]
    if source_complete:
        words.append("--from-complete")
    return " ".join(words)


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
        # Holders serve first (a repair reads no hub); with none, the seed downloads and is the
        # root. Group order, seed first, decides the tree.
        order = [seed] + [n.name for n in group.nodes if n.name != seed]
        holders = [n for n in order if n in done] or [seed]
        receivers = [n for n in order if n not in holders]
        gw = GroupWeights(meta, dest, seed, states, done, upstreams(holders, receivers))
        gw.run = _RUN_IDS.setdefault(run, random_ids.token_hex(6))
        streaming = len(gw.upstream) + (1 if gw.downloads else 0)
        if gw.upstream and 0 < state.config.PARALLEL < streaming:
            # A receiver waits for its upstream inside the same operation: every node of the
            # stream must run it at once, or one may wait for a node pyinfra has not started.
            refusals.append(
                f"group {group.name}: {streaming} nodes stream the weights at once, but pyinfra "
                f"runs {state.config.PARALLEL} hosts in parallel (--parallel {streaming} or more)"
            )
        if gw.upstream:
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
            + "\nRemedy: free space (or set model_weights_dir to a larger filesystem); let every"
            " node of a group run at once."
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
    is_seed = host.name == gw.seed and gw.downloads
    token_path = f"{cfg_dir}/hub-token" if group.hub.token_file and is_seed else None
    if host.name not in gw.complete:
        files.put(
            name="Weights pull config",
            src=StringIO(
                pull_config(
                    gw.meta,
                    gw.dest,
                    group.hub.endpoint,
                    f"{cfg_dir}/hub-token" if group.hub.token_file else None,
                    data.weights_attempts,
                )
            ),
            dest=config,
            mode="644",
        )
    if is_seed:
        _seed_ops(token_path)
    key_path, known_hosts = f"{cfg_dir}/fanout_key", f"{cfg_dir}/known_hosts"
    if gw.upstream and gw.key is not None:
        _fanout_ops(gw, group.name, [str(n.node.ip) for n in group.nodes], key_path, known_hosts)
    if is_seed or gw.upstream:
        # One operation on every node of the group, at one call site: pyinfra runs it on all of
        # them at once, so the seed downloads while the others already receive. A holder that
        # only serves adds it skipped, so its key line's removal orders after the stream.
        by_name = {n.name: str(n.node.ip) for n in group.nodes}
        user = host.data.get("ssh_user") or "root"
        source = gw.upstream.get(host.name)
        if is_seed:
            command = seed_command(data.weights_client_venv, script, config, gw.run)
        elif source is not None:
            command = stream_command(
                script,
                config,
                gw.run,
                f"{user}@{by_name[source]}",
                source in gw.complete,
                key_path,
                known_hosts,
            )
        else:
            command = "true"
        server.shell(
            name=f"Weights: stream through the group ({gw.meta.repo_id}, {mb:.0f} MiB)",
            commands=[command],
            _if=_always if command != "true" else _never,
        )
    if not data.weights_keep_fanout_key:
        _cleanup_ops(gw, group.name, token_path, key_path, known_hosts)


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


def _seed_ops(token_path: str | None) -> None:
    """Before the stream, on the seed only: the hub client as locked, the token (0600)."""
    gw = group_weights()
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
    """After the stream (pyinfra runs each operation on every host before the next): the
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
