"""What ironserve runs on a node: the Plan's container, pinned and labelled with its own hash.

The hash covers everything the running container depends on: its ``docker run`` argv (with the
image pinned by digest), the files it mounts (MindIE's config.json and rank table) and the env
file's revision. A re-run compares it with the label of the running container: equal means
nothing to do, so a second run changes nothing and restarts nothing; different means that one
container is replaced.

The serve command of a Ray group (``vllm serve`` in the head's Ray container) is tracked the same
way, in a small state folder inside the container: a changed flag re-runs only the serve command,
the Ray containers stay.
"""

from __future__ import annotations

import hashlib
import json
import shlex

from ironserve.engines.base import ContainerSpec, NodeLaunch, RenderedFile

LABEL_GROUP = "ironserve.group"
LABEL_ROLE = "ironserve.role"
LABEL_RANK = "ironserve.rank"
LABEL_SPEC = "ironserve.spec"
# Inside the container: the serve process's pid, its spec hash and the start time of the
# container's PID 1 when it was written (a restarted container has a new PID 1, so a stale pid
# file from before the restart is recognised as stale, whatever process now has that pid).
SERVE_STATE = "/run/ironserve"
SERVE_ARGV0 = "ironserve-serve"
_PID1_START = "cut -d' ' -f22 /proc/1/stat"


def _digest(doc: object) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def pinned(launch: NodeLaunch, image: str) -> ContainerSpec:
    """The Plan's container with the image replaced by its pinned (``name@sha256:``) form."""
    return launch.container.model_copy(update={"image": image})


def spec_hash(launch: NodeLaunch, image: str, secrets_rev: str) -> str:
    files = {f.path: [f.mode, hashlib.sha256(f.content.encode()).hexdigest()] for f in launch.files}
    return _digest(
        {"argv": pinned(launch, image).docker_run_argv(), "files": files, "secrets": secrets_rev}
    )


def container_hash(container: ContainerSpec, files: list[RenderedFile], secrets_rev: str) -> str:
    """The hash of one of several containers on a node (a Dynamo group's), ``container`` already
    pinned: its argv, the files it mounts (only those: a worker's options file changing leaves
    etcd on the same node alone) and the env file's revision when it reads the env file."""
    mounted = {
        f.path: [f.mode, hashlib.sha256(f.content.encode()).hexdigest()]
        for f in files
        if any(arg.split(":")[0] == f.path for arg in container.run_args)
    }
    secrets = secrets_rev if "--env-file" in container.run_args else None
    return _digest({"argv": container.docker_run_argv(), "files": mounted, "secrets": secrets})


def labelled_argv(
    container: ContainerSpec, group: str, role: str, rank: int, digest: str
) -> list[str]:
    """``docker run -d --name N --label ... <the container's run args> ... IMAGE COMMAND``."""
    labels = [
        f"{LABEL_GROUP}={group}",
        f"{LABEL_ROLE}={role}",
        f"{LABEL_RANK}={rank}",
        f"{LABEL_SPEC}={digest}",
    ]
    label_args = [arg for label in labels for arg in ("--label", label)]
    run_args = [*label_args, *container.run_args]
    return container.model_copy(update={"run_args": run_args}).docker_run_argv()


def run_argv(launch: NodeLaunch, group: str, image: str, digest: str) -> list[str]:
    """The Plan's container, pinned and labelled (:func:`labelled_argv`)."""
    return labelled_argv(pinned(launch, image), group, launch.role, launch.rank, digest)


def serve_hash(launch: NodeLaunch) -> str | None:
    return None if launch.serve_exec is None else _digest(launch.serve_exec)


def serve_argv(launch: NodeLaunch) -> list[str]:
    """``docker exec -d`` of the Plan's serve command, exactly its argv (``"$@"``), recording
    its pid and spec, its output sent to the container's log (``docker exec -d`` would drop it,
    and the readiness wait reads the load's progress there)."""
    assert launch.serve_exec is not None
    script = (
        f"mkdir -p {SERVE_STATE} && echo $$ > {SERVE_STATE}/serve.pid && "
        f'{_PID1_START} > {SERVE_STATE}/pid1 && echo "$1" > {SERVE_STATE}/serve.spec && '
        'shift && exec "$@" >/proc/1/fd/1 2>/proc/1/fd/2'
    )
    return [
        "docker",
        "exec",
        "-d",
        launch.container.name,
        "sh",
        "-c",
        script,
        SERVE_ARGV0,
        str(serve_hash(launch)),
        *launch.serve_exec,
    ]


def serve_probe() -> str:
    """Inside the container: the serve spec when the serve process is alive, else nothing."""
    s = SERVE_STATE
    return (
        f'[ -f {s}/serve.pid ] && [ "$(cat {s}/pid1)" = "$({_PID1_START})" ] '
        f'&& kill -0 "$(cat {s}/serve.pid)" 2>/dev/null && cat {s}/serve.spec'
    )


def stop_serve_script(grace_s: int = 30) -> str:
    """Inside the container: stop the serve process (TERM, then KILL after ``grace_s``)."""
    return (
        f"{serve_probe()} >/dev/null || exit 0; p=$(cat {SERVE_STATE}/serve.pid); "
        f'kill "$p"; i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt {grace_s} ]; '
        'do sleep 1; i=$((i+1)); done; kill -9 "$p" 2>/dev/null; '
        f"rm -f {SERVE_STATE}/serve.pid {SERVE_STATE}/serve.spec; true"
    )


def docker_exec_sh(container: str, script: str) -> str:
    return shlex.join(["docker", "exec", container, "sh", "-c", script])
