"""roles/engine: converge, stop and restart the Plan's engine containers (see decide.py).

Operation order (each wave runs on every node of the run in parallel): state folder, the 0600
env file with the API key, rendered files (MindIE, TensorRT-LLM's options under Dynamo), the
images pulled by digest where missing (through the group's image cache: filled once from the head
first), the head's container, the workers' containers, then on the head the Ray wait and the serve
command, and on the serving node the readiness wait and a real completion. Container operations
run only while every reachable node of the group is still in the run (a failed pull anywhere
leaves every container of the group as it was).

A Dynamo group starts in three waves instead of head and workers: the control plane (etcd,
NATS), the frontend, the workers (engines/dynamo.py WAVES). A wave where some container of the
group changes is added on every node of the group, skipped (``_if``) where that node has nothing
in it, so pyinfra's order (one operation on every host before the next) keeps the waves apart
whichever nodes take part; a wave where nothing changes is not added at all.
"""

from __future__ import annotations

import shlex
from io import StringIO
from pathlib import Path

from pyinfra.api.deploy import deploy
from pyinfra.context import host, state
from pyinfra.operations import files, python, server

from ironserve.engines.base import NODE_STATE_DIR
from ironserve.engines.common import container_name
from ironserve.engines.trtllm import mpi_dir
from ironserve.facts.engine import IronserveContainers
from ironserve.operations import secrets
from ironserve.roles import FACT_TIMEOUT_S, plan_of, run_of
from ironserve.roles.engine import waits
from ironserve.roles.engine.decide import GroupServe, NodeServe, group_of
from ironserve.roles.engine.defaults import DEFAULTS, EngineData
from ironserve.roles.webui import render as webui_render
from ironserve.serving import cache_warm, registry, spec

WARM_SOURCE = Path(cache_warm.__file__)


def _group_intact(group: GroupServe) -> bool:
    """No reachable node of the group has failed in this run so far."""
    failed = {h.name for h in run_of(state).failed_hosts}
    return not any(n.name in failed for n in group.nodes if n.action != "unreachable")


def action_commands(container: str, action: str, run_argv: list[str]) -> list[str]:
    """The shell commands that bring one container to its action."""
    name = shlex.quote(container)
    run = shlex.join(run_argv)
    return {
        "create": [run],
        "replace": [f"docker rm -f {name}", run],
        "start": [f"docker start {name}"],
        "restart": [f"docker restart {name}"],
    }.get(action, [])


def container_commands(node: NodeServe) -> list[str]:
    """The commands for the Plan's one container of ``node`` (engines other than Dynamo)."""
    return action_commands(node.launch.container.name, node.action, node.run_argv)


def wave_commands(node: NodeServe, wave: str) -> list[str]:
    """The commands for ``node``'s containers of one Dynamo wave, in the Plan's order."""
    return [
        command
        for item in node.wave(wave)
        for command in action_commands(item.name, item.action, item.run_argv)
    ]


DYNAMO_WAVE_OPS = {
    "control plane": "Start the Dynamo control plane (etcd, NATS)",
    "frontend": "Start the Dynamo frontend",
    "workers": "Start the Dynamo workers",
}


def _never() -> bool:
    return False


def serve_commands(group: GroupServe) -> list[str]:
    """Stop a serve command still running (its placement group is gone), start the Plan's."""
    head = group.nodes[0].launch
    grace = EngineData.of(host).serve_stop_grace
    return [
        spec.docker_exec_sh(head.container.name, spec.stop_serve_script(grace)),
        shlex.join(spec.serve_argv(head)),
    ]


def _container(group: GroupServe, node: NodeServe, what: str) -> None:
    commands = container_commands(node)
    if commands:
        server.shell(name=what, commands=commands, _if=lambda: _group_intact(group))


def _wave(group: GroupServe, node: NodeServe, wave: str) -> None:
    if not group.wave_changes(wave):
        return
    commands = wave_commands(node, wave)
    server.shell(
        name=DYNAMO_WAVE_OPS[wave],
        commands=commands or ["true"],
        _if=(lambda: _group_intact(group)) if commands else _never,
    )


def _dynamo(group: GroupServe, node: NodeServe) -> None:
    # One call site per wave: separate operations, so separate waves in pyinfra's order.
    if any(n.stale for n in group.nodes):  # on every node, skipped where none is stale
        server.shell(
            name="Remove the group's containers the Plan no longer has",
            commands=[shlex.join(["docker", "rm", "-f", *node.stale])] if node.stale else ["true"],
            _if=(lambda: _group_intact(group)) if node.stale else _never,
        )
    _wave(group, node, "control plane")
    _wave(group, node, "frontend")
    _wave(group, node, "workers")


def pull_engine_image(group: GroupServe, node: NodeServe) -> None:
    """``docker pull`` the pinned image where it is missing. With the group's image cache, the
    head first fills it: each blob it lacks read once from upstream and checked
    (serving/cache_warm.py), so the parallel pulls that follow find every blob there and the
    image crosses the site link once."""
    missing = [n for n in group.nodes if n.fact is not None and not n.image_present]
    if group.cache is not None and node.name == group.nodes[0].name and missing:
        script = f"{NODE_STATE_DIR}/cache_warm.py"
        files.put(name="Image cache fill script", src=str(WARM_SOURCE), dest=script, mode="755")
        ref = registry.parse_image(group.image)
        server.shell(
            name="Fill the image cache with the engine image (on the head)",
            commands=[
                shlex.join(
                    [
                        "python3",
                        script,
                        group.cache.upstream,
                        ref.repository,
                        str(ref.digest),
                        group.cache.storage,
                    ]
                )
            ],
        )
    if node.pulls:
        server.shell(
            name="Pull the engine image by digest (every node in parallel)",
            commands=[f"docker pull -q {shlex.quote(image)}" for image in node.pulls],
        )


def _converge(group: GroupServe) -> None:
    node = group.node(host.name)
    launch = node.launch
    files.directory(
        name="Engine state folder (0700)", path=f"{NODE_STATE_DIR}/{group.name}", mode="700"
    )
    secrets.secret_file(
        name="Engine env file with the API key (0600)",
        path=group.plan.context.secrets_env_file,
        content=group.env,
    )
    mpi = group.mpi_files.get(host.name, [])
    if mpi:
        files.directory(
            name="MPI SSH folder of a TensorRT-LLM group (0700)",
            path=mpi_dir(group.plan.context),
            mode="700",
        )
    for path, content in host.loop(mpi):
        secrets.secret_file(name="MPI SSH key file (0600)", path=path, content=content)
    for rendered in host.loop(launch.files):
        files.put(
            name="Engine configuration file (rank table, config.json, engine options)",
            src=StringIO(rendered.content),
            dest=rendered.path,
            mode=rendered.mode.lstrip("0") or "0",
        )
    pull_engine_image(group, node)
    if node.containers:  # Dynamo: control plane, frontend, workers
        _dynamo(group, node)
    # Head first, then workers: separate call sites, so separate waves in pyinfra's order.
    elif launch.rank == 0:
        _container(group, node, "Start the head's engine container")
    else:
        _container(group, node, "Start the workers' engine containers")
    if launch.serve_exec is not None and group.serve:
        python.call(
            name="Wait until Ray shows every planned node and GPU",
            function=lambda state, host: waits.wait_for_ray(state, host, group),
            _if=lambda: _group_intact(group),
        )
        server.shell(
            name="Start the serve command in the Ray head",
            commands=serve_commands(group),
            _if=lambda: _group_intact(group),
        )
    if launch.serves_api and group.check:
        python.call(
            name="Wait until the engine answers /health (progress-aware)",
            function=lambda state, host: waits.wait_ready(state, host, group),
        )
        python.call(
            name="Prove a chat completion with the API key (refused without)",
            function=lambda state, host: waits.prove_completion(state, host, group),
        )


def _taken_out() -> bool:
    """An earlier deploy of this run (site.py: provision's unreachable-group rule) took this
    host out: its group is not served in this run."""
    return host.name in {h.name for h in run_of(state).failed_hosts}


@deploy("Engine", data_defaults=DEFAULTS)
def deploy_engine() -> None:
    plan_of(state, host)
    if not _taken_out():
        _converge(group_of(state, host))


@deploy("Engine restart", data_defaults=DEFAULTS)
def deploy_engine_restart() -> None:
    """Every group restarts in order: head, workers, (Ray wait, serve), ready, completion (a
    Dynamo group: control plane, frontend, workers, ready, completion).

    Groups restart side by side: pyinfra runs each operation on all hosts before the next, and a
    group is one endpoint, so none of our topologies can keep answering through its own restart;
    roll several groups one at a time with ``--limit``."""
    plan_of(state, host)
    if not _taken_out():
        _converge(group_of(state, host, restart=True))


@deploy("Engine stop", data_defaults=DEFAULTS)
def deploy_engine_stop() -> None:
    hp = plan_of(state, host)
    names = (
        *(c.name for c in hp.launch.containers),  # a Dynamo node's every container
        container_name(hp.plan.context, "gateway"),
        webui_render.container_name(hp.group.name),
    )
    found = host.get_fact(
        IronserveContainers, group=hp.group.name, names=names, _timeout=FACT_TIMEOUT_S
    )
    if found:
        server.shell(
            name="Remove the serving group's containers",
            commands=[shlex.join(["docker", "rm", "-f", *found])],
        )
