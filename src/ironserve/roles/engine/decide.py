"""What a serve / stop / restart run does, decided before its first operation.

The first host to reach the role decides for every serving group of the run, on the control
machine: the image pinned by digest (an image missing in the registry stops the run here, before
any container anywhere is touched), the API key, each node's container fact, and from those each
node's action and whether the group's serve command and waits run. Pure rules
(:func:`node_action`, :func:`group_plan`) are separate from the fact gathering, for tests.

Actions: ``create`` (no container), ``replace`` (its spec label differs: removed and run again),
``start`` (same spec, stopped), ``restart`` (same spec, running, but the group must restart: a
new Ray head, a re-formed SGLang/MindIE rendezvous, or deploys/restart.py), ``keep``, and
``unreachable`` (SSH failed in this run: nothing is done there, the waits name it).

A Dynamo group has several containers per node (``NodeLaunch.containers``: etcd, NATS and the
frontend on the head, the workers on their pools' nodes), each with its own image, spec label,
fact and action (:class:`ContainerServe`); :func:`dynamo_actions` is its group rule.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra import logger
from pyinfra.api.exceptions import DeployError

from ironserve.deploy.context import host_plans
from ironserve.deploy.reach import unconnected
from ironserve.engines.base import NodeLaunch
from ironserve.engines.common import container_name
from ironserve.engines.dynamo import frontend_name, wave_of
from ironserve.errors import InputError
from ironserve.facts.engine import DockerImagePresent, EngineContainer, IronserveContainers
from ironserve.plan.plan import Plan
from ironserve.roles import FACT_TIMEOUT_S, run_of
from ironserve.roles.engine.defaults import EngineData
from ironserve.roles.image_cache.group import cache_of
from ironserve.serving import apikey, image_cache, ray_status, registry, spec
from ironserve.serving.image_cache import ImageCache

CHANGING = ("create", "replace", "start", "restart")


@dataclass
class ContainerServe:
    """One container of a node that runs several (a Dynamo group's), decided on its own."""

    name: str
    wave: str  # engines/dynamo.py WAVES
    digest: str  # its spec hash
    run_argv: list[str]
    fact: dict[str, Any] | None  # None: unreachable
    action: str = "keep"


@dataclass
class NodeServe:
    name: str
    launch: NodeLaunch
    digest: str  # the container's spec hash
    run_argv: list[str]
    fact: dict[str, Any] | None  # None: unreachable
    image_present: bool
    action: str = "keep"
    # Pinned images missing on the node (pulled before any container starts).
    pulls: list[str] = field(default_factory=list)
    # A Dynamo node's containers in start order (empty for the other engines: ``launch``'s one).
    containers: list[ContainerServe] = field(default_factory=list)
    # A Dynamo node's engine containers of the group that the Plan no longer has (a pool that
    # now has fewer workers per node): removed before any container starts, freeing devices.
    stale: list[str] = field(default_factory=list)

    def wave(self, wave: str) -> list[ContainerServe]:
        return [c for c in self.containers if c.wave == wave]


@dataclass
class GroupServe:
    name: str
    plan: Plan
    image: str  # pinned: name@sha256:... (through the group's image cache when it has one)
    key_file: Path
    secrets_rev: str
    nodes: list[NodeServe]  # plan order, head first
    ray: bool  # vLLM on Ray: serve command in the head after the Ray wait
    env: str = field(repr=False, default="")  # the node env file (secret: never in a repr)
    serve: bool = False  # (re)run the serve command
    check: bool = False  # wait for readiness and prove a completion
    unreachable: list[str] = field(default_factory=list)
    cache: ImageCache | None = None  # the group's image cache, which the nodes pull through
    # A multi-node TensorRT-LLM group: per node, its MPI SSH files (path, content; secret).
    mpi_files: dict[str, list[tuple[str, str]]] = field(repr=False, default_factory=dict)

    def node(self, name: str) -> NodeServe:
        return next(n for n in self.nodes if n.name == name)

    @property
    def serving(self) -> NodeServe:
        return self.node(self.plan.endpoint.node)

    @property
    def changed(self) -> bool:
        return self.serve or self.check or any(n.action in CHANGING for n in self.nodes)

    @property
    def api_container(self) -> str:
        """The container answering the API on the serving node (Dynamo: the frontend)."""
        ctx = self.plan.context
        return frontend_name(ctx) if ctx.dynamo is not None else self.serving.launch.container.name

    def wave_changes(self, wave: str) -> bool:
        """Whether any container of ``wave`` changes on any node (Dynamo)."""
        return any(c.action in CHANGING for n in self.nodes for c in n.wave(wave))


def node_action(fact: dict[str, Any] | None, digest: str) -> str:
    if fact is None:
        return "unreachable"
    if not fact.get("exists"):
        return "create"
    if fact.get("spec") != digest:
        return "replace"
    if not fact.get("running"):
        return "start"
    return "keep"


def ray_short(plan: Plan, status_text: str | None) -> bool:
    """The head's `ray status` shows fewer nodes or GPUs than the Plan's Ray layout (None: not
    read; no Ray layout: never short)."""
    if status_text is None or plan.layout.ray is None:
        return False
    return plan.layout.ray.is_short(ray_status.parse(status_text))


def group_plan(
    actions: dict[str, str],
    order: list[str],
    *,
    ray: bool,
    head_ray_short: bool = False,
    serve_current: str | None = None,
    serve_wanted: str | None = None,
    restart: bool = False,
) -> tuple[dict[str, str], bool, bool]:
    """(actions, serve, check) for a group whose nodes' own actions are ``actions``.

    ``restart``: deploys/restart.py, every running container restarts, in plan order."""
    out = dict(actions)
    head = order[0]
    multi = len(order) > 1
    if restart:
        out = {n: ("restart" if a == "keep" else a) for n, a in out.items()}
    elif ray:
        # A new head (new GCS) means every worker must join again; a Ray cluster that lost a
        # node is re-formed the same way.
        if out[head] in CHANGING or head_ray_short:
            out = {n: ("restart" if a == "keep" and n != head else a) for n, a in out.items()}
    elif multi and any(a in CHANGING for a in out.values()):
        # SGLang / MindIE ranks rendezvous at start: one changed rank restarts them all.
        out = {n: ("restart" if a == "keep" else a) for n, a in out.items()}
    changed = any(a in CHANGING for a in out.values())
    if ray:
        serve = changed or serve_current != serve_wanted
        return out, serve, serve
    return out, False, changed


def dynamo_actions(
    actions: dict[str, str], waves: dict[str, str], *, restart: bool = False
) -> dict[str, str]:
    """A Dynamo group's container actions (container name -> action; ``waves``: container name
    -> its wave). Workers register with the control plane on their own, so one changed worker
    changes only itself; a control plane that changes (new etcd or NATS) restarts the frontend
    and every worker so they register again; deploys/restart.py restarts every container."""
    out = dict(actions)
    plane_changed = any(a in CHANGING for n, a in out.items() if waves[n] == "control plane")
    if restart or plane_changed:
        out = {
            n: "restart" if a == "keep" and (restart or waves[n] != "control plane") else a
            for n, a in out.items()
        }
    return out


def node_summary(actions: list[str]) -> str:
    """A node's action from its containers': unreachable, else the first change, else keep."""
    if "unreachable" in actions:
        return "unreachable"
    return next((a for a in actions if a in CHANGING), "keep")


_RUNS: weakref.WeakKeyDictionary[Any, dict[str, GroupServe]] = weakref.WeakKeyDictionary()


def _pin(image: str, head: Any, cache: dict[str, str], key: str = "engine_image") -> str:
    if image not in cache:
        try:
            cache[image] = registry.resolve(
                image,
                insecure=list(head.data.get("container_runtime_insecure_registries") or []),
                mirrors=list(head.data.get("container_runtime_registry_mirrors") or []),
                timeout=EngineData.of(head).serve_registry_timeout,
            )
        except registry.ImageError as error:
            raise DeployError(f"{key}: {error}") from error
    return cache[image]


def _image_key(plan: Plan, image: str) -> str:
    """The data key that names ``image`` (for a Dynamo group's control plane, its own)."""
    spec = plan.context.dynamo
    if spec is not None and image == spec.etcd_image:
        return "dynamo_etcd_image"
    if spec is not None and image == spec.nats_image:
        return "dynamo_nats_image"
    return "engine_image"


def stale_containers(listed: list[str], planned: list[str], beside: set[str]) -> list[str]:
    """The group's containers on a node (``listed``, by its label) that are neither ``planned``
    there nor one of the containers other roles run ``beside`` the engine (gateway, Open
    WebUI)."""
    return [name for name in listed if name not in planned and name not in beside]


def _dynamo_nodes(
    state: Any, plan: Plan, group: str, rev: str, reachable: set[str], pins: dict[str, str]
) -> list[NodeServe]:
    """Every node of a Dynamo group with each of its containers' fact and own action."""
    # (Imported here: roles/webui's package imports this module.)
    from ironserve.roles.webui.render import container_name as webui_container

    ctx = plan.context
    beside = {container_name(ctx, "gateway"), webui_container(group)}
    nodes = []
    for launch in plan.nodes:
        h = state.inventory.get_host(launch.node) if launch.node in reachable else None
        items, pulls, present = [], [], {}
        stale: list[str] = []
        if h is not None:
            listed = h.get_fact(IronserveContainers, group=group, _timeout=FACT_TIMEOUT_S)
            stale = stale_containers(listed, [c.name for c in launch.containers], beside)
        for container in launch.containers:
            pinned = container.model_copy(update={"image": pins[container.image]})
            digest = spec.container_hash(pinned, launch.files, rev)
            fact = None
            if h is not None:
                fact = h.get_fact(
                    EngineContainer, container=container.name, _timeout=FACT_TIMEOUT_S
                )
                if pinned.image not in present:
                    present[pinned.image] = bool(fact.get("docker")) and h.get_fact(
                        DockerImagePresent, ref=pinned.image, _timeout=FACT_TIMEOUT_S
                    )
                    if not present[pinned.image]:
                        pulls.append(pinned.image)
            items.append(
                ContainerServe(
                    name=container.name,
                    wave=wave_of(ctx, container),
                    digest=digest,
                    run_argv=spec.labelled_argv(pinned, group, launch.role, launch.rank, digest),
                    fact=fact,
                    action=node_action(fact, digest),
                )
            )
        last = items[-1]
        nodes.append(
            NodeServe(
                name=launch.node,
                launch=launch,
                digest=last.digest,
                run_argv=last.run_argv,
                fact=last.fact,
                image_present=not pulls,
                action=last.action,
                pulls=pulls,
                containers=items,
                stale=stale,
            )
        )
    return nodes


def _decide_dynamo(nodes: list[NodeServe], restart: bool) -> bool:
    """Apply the group rule to ``nodes``' containers; whether the readiness wait runs."""
    every = [c for n in nodes for c in n.containers]
    actions = dynamo_actions(
        {c.name + "@" + n.name: c.action for n in nodes for c in n.containers},
        {c.name + "@" + n.name: c.wave for n in nodes for c in n.containers},
        restart=restart,
    )
    for n in nodes:
        for c in n.containers:
            c.action = actions[c.name + "@" + n.name]
        n.action = node_summary([c.action for c in n.containers])
    return any(c.action in CHANGING for c in every) or any(n.stale for n in nodes)


def decide(state: Any, restart: bool = False) -> dict[str, GroupServe]:
    """Every group of the run, decided (cached per run: hosts share one decision)."""
    run = run_of(state)
    if run in _RUNS:
        return _RUNS[run]
    down = unconnected(state)
    # Each group's image is resolved with its own head's registry settings (mirrors, insecure
    # registries, timeout): one cache per head, so no group's settings answer for another's.
    pins: dict[str, dict[str, str]] = {}
    groups: dict[str, GroupServe] = {}
    try:
        plans = host_plans(state)
    except InputError as error:
        raise DeployError(f"the inventory is not valid:\n{error}") from error
    for hp in plans.values():
        group, plan = hp.group, hp.plan
        if group.name in groups:
            continue
        members = [state.inventory.get_host(n.name) for n in group.nodes]
        in_run = {h.name for h in members if run.is_host_in_limit(h)}
        if not in_run:  # `--limit` left this group out of the run
            continue
        if not plan.feasible:
            raise DeployError(
                f"serving group {group.name}: the plan is not feasible: "
                + "; ".join(plan.sizing.blockers)
                + " (see `ironserve plan -i ...`)"
            )
        head_host = state.inventory.get_host(group.head.name)
        pinned = pins.setdefault(head_host.name, {})
        # The digest comes from the upstream registry as always; with the group's image cache
        # the nodes pull that digest through it (serving/image_cache.py).
        cache = cache_of(state, head_host)
        image = image_cache.node_reference(_pin(plan.context.image, head_host, pinned), cache)
        node_refs: dict[str, str] = {}
        for launch in plan.nodes:  # a Dynamo group's control plane images too
            for c in launch.containers:
                ref = _pin(c.image, head_host, pinned, _image_key(plan, c.image))
                node_refs[c.image] = image_cache.node_reference(ref, cache)
        try:
            key, key_file, made = apikey.ensure_plan_key(plan.api_key)
        except apikey.ApiKeyError as error:
            raise DeployError(f"{group.head.name}: serving_api_key_file: {error}") from error
        if made:
            logger.warning(
                f"serving group {group.name}: no serving_api_key_file; generated an API key "
                f"into {key_file} (0600, on this machine). Clients send it as the Bearer token."
            )
        env = apikey.secrets_env(key)
        rev = apikey.secrets_revision(group.name, env)
        mpi_files = _mpi_files(plan, group.head.name)
        ray = plan.layout.ray is not None
        if plan.context.dynamo is not None:
            reachable = {n.name for n in group.nodes if n.name not in down and n.name in in_run}
            dyn = _dynamo_nodes(state, plan, group.name, rev, reachable, node_refs)
            check = _decide_dynamo(dyn, restart)
            groups[group.name] = GroupServe(
                name=group.name,
                plan=plan,
                image=image,
                key_file=key_file,
                env=env,
                secrets_rev=rev,
                nodes=dyn,
                mpi_files=mpi_files,  # a TensorRT-LLM worker over nodes: its MPI world's keys
                ray=False,
                check=check,
                unreachable=[n.name for n in dyn if n.action == "unreachable"],
            )
            continue
        nodes = []
        for launch in plan.nodes:
            digest = spec.spec_hash(launch, image, rev)
            fact, present = None, False
            if launch.node not in down and launch.node in in_run:
                h = state.inventory.get_host(launch.node)
                head_ray = ray and launch.serve_exec is not None
                fact = h.get_fact(
                    EngineContainer,
                    container=launch.container.name,
                    serve=head_ray,
                    ray=head_ray,
                    _timeout=FACT_TIMEOUT_S,
                )
                present = bool(fact.get("docker")) and h.get_fact(
                    DockerImagePresent, ref=image, _timeout=FACT_TIMEOUT_S
                )
            nodes.append(
                NodeServe(
                    name=launch.node,
                    launch=launch,
                    digest=digest,
                    run_argv=spec.run_argv(launch, group.name, image, digest),
                    fact=fact,
                    image_present=present,
                    action=node_action(fact, digest),
                    pulls=[] if present else [image],
                )
            )
        head = nodes[0]
        actions, serve, check = group_plan(
            {n.name: n.action for n in nodes},
            [n.name for n in nodes],
            ray=ray,
            head_ray_short=head.action == "keep"
            and ray_short(plan, (head.fact or {}).get("ray_status")),
            serve_current=(head.fact or {}).get("serve_spec"),
            serve_wanted=spec.serve_hash(plan.nodes[0]),
            restart=restart,
        )
        for n in nodes:
            n.action = actions[n.name]
        groups[group.name] = GroupServe(
            name=group.name,
            plan=plan,
            image=image,
            key_file=key_file,
            env=env,
            secrets_rev=rev,
            nodes=nodes,
            mpi_files=mpi_files,
            ray=ray,
            serve=serve,
            check=check,
            unreachable=[n.name for n in nodes if n.action == "unreachable"],
            cache=cache,
        )
    _RUNS[run] = groups
    return groups


def group_of(state: Any, host: Any, restart: bool = False) -> GroupServe:
    for group in decide(state, restart).values():
        if any(n.name == host.name for n in group.nodes):
            return group
    raise DeployError(f"{host.name}: in no serving group")


def _mpi_files(plan: Plan, head: str) -> dict[str, list[tuple[str, str]]]:
    """Each node's MPI SSH files of a group with TensorRT-LLM MPI worlds (a multi-node trtllm
    group, Dynamo TensorRT-LLM workers over nodes: serving/mpi_keys.py), the keys made once on
    this machine; empty for every other group."""
    if plan.mpi_keys is None:
        return {}
    from ironserve.serving import mpi_keys

    path = Path(plan.mpi_keys).expanduser()
    try:
        keys, made = mpi_keys.ensure_keys(path)
    except apikey.ApiKeyError as error:
        raise DeployError(f"{head}: serving_api_key_dir: {error}") from error
    if made:
        logger.warning(f"serving group {plan.group}: generated its MPI SSH keys into {path}")
    return {n.node: mpi_keys.node_files(plan.context, keys, n.node) for n in plan.nodes}
