"""Cluster tier: the serving groups as the Plan wants them, read over SSH from every node at once.

- ``cluster.engine_containers`` (per node): the Plan's container exists and runs, its restart
  count (a count above 0 is WARN: it crashed and came back; ``restarting`` is FAIL: a crash
  loop); on a Ray head, the serve command inside it is alive;
- ``cluster.ray_nodes`` (per node, vLLM on Ray): ``ray status`` in the head shows every planned
  node and GPU; when short, the head's ``ray.nodes()`` probe names the missing nodes, and only
  those FAIL;
- ``cluster.weights`` (per node): the cheap check a deploy makes (ironserve-manifest.json present,
  every file it lists on disk with the size and mtime recorded at verification; a file rewritten
  since, say a flipped byte, has a new mtime). ``ironserve weights verify`` re-hashes;
- ``cluster.npu_ping`` (per Ascend node with NPU addresses): ``hccn_tool -ping`` from each NPU to
  the same-index NPU of every peer of its group.

A Dynamo group's nodes run several containers each: ``cluster.engine_containers`` judges every
one (etcd, NATS and the frontend on the head, each worker on its node, named with its pool:
"decode worker 2 (ironserve-default-decode-2) absent"), and ``cluster.dynamo_worker_health``
asks each running worker's system server (``DYN_SYSTEM_PORT``) for ``/health`` on the node's
loopback (curl on the node, through the run's SSH connection), then, in one more call, the
``/metrics`` of those answering 200: ``cluster.dynamo_worker_metrics``
(health/dynamo_worker_metrics.py: unreadable, errors, KV pressure). With etcd and NATS, the head
reads discovery as the frontend sees it (facts/dynamo.py): ``cluster.dynamo_control_plane`` on the
head and ``cluster.dynamo_discovery`` per running worker that registers (health/dynamo_checks.py).
A failing worker or control-plane container points to its own runbook (dynamo-decode-lost,
dynamo-prefill-lost, dynamo-control-plane).

A group whose head has no engine container (a Dynamo group: no frontend) is *not deployed*: one
``cluster.deployed`` WARN for the group (first-deploy) and none of its engine checks; NPU peer
pings (the fabric) still run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gevent  # type: ignore[import-untyped]

from ironserve.config.schema import Cluster, ServingGroup
from ironserve.deploy import transport
from ironserve.engines.dynamo import Component, components, control_plane_urls, frontend_name
from ironserve.facts.npu_ping import NpuPeerPings, PingResult
from ironserve.health import dynamo_checks, dynamo_worker_metrics
from ironserve.health.model import CheckResult, Status
from ironserve.plan.plan import Plan, plan_group
from ironserve.serving import ray_status, spec
from ironserve.weights.facts import WeightsState

TIER = "cluster"
CHECK_TIMEOUT_S = 40  # `ray status` in the head is bounded by 30 s inside the fact
RESTARTS_FAIL = 5  # a container restarted this often is crash-looping, even if up right now


@dataclass
class GroupPlan:
    group: ServingGroup
    plan: Plan

    @property
    def name(self) -> str:
        return self.group.name

    @property
    def ray(self) -> bool:
        return self.plan.layout.ray is not None

    @property
    def head(self) -> str:
        return self.plan.nodes[0].node

    @property
    def dynamo(self) -> bool:
        return self.plan.context.dynamo is not None

    @property
    def head_container(self) -> str:
        """The container whose absence on the head means "not deployed" (Dynamo: the frontend)."""
        if self.dynamo:
            return frontend_name(self.plan.context)
        return self.plan.nodes[0].container.name

    @property
    def control_plane(self) -> tuple[str, str] | None:
        """A Dynamo group's etcd and NATS monitoring URLs (None: none, or file discovery)."""
        return control_plane_urls(self.plan.context) if self.dynamo else None

    def address(self, node: str) -> str:
        return next(n.address for n in self.plan.context.nodes if n.name == node)

    def components(self, node: str) -> list[Component]:
        """A Dynamo node's containers as health names them (none for other engines)."""
        return components(self.plan.context, node) if self.dynamo else []


def group_plans(cluster: Cluster) -> list[GroupPlan]:
    return [GroupPlan(g, plan_group(g)) for g in cluster.groups]


# --- verdicts (pure) ---------------------------------------------------------------------------


def _r(
    check: str,
    node: str,
    status: Status,
    observed: str,
    expected: str,
    action: str = "",
    runbook: str = "",
) -> CheckResult:
    return CheckResult(f"cluster.{check}", TIER, node, status, observed, expected, action, runbook)


def not_deployed(gp: GroupPlan) -> CheckResult:
    name = gp.head_container
    return _r(
        "deployed",
        gp.head,
        Status.WARN,
        f"group {gp.name}: no engine container {name} on the head",
        f"{name} deployed (group {gp.name})",
        "deploy: pyinfra -y INVENTORY deploys/site.py (or deploys/serve.py)",
        "first-deploy",
    )


def engine_container(
    node: str,
    container: str,
    fact: dict[str, Any] | None,
    serve_expected: str | None = None,
    error: str | None = None,
    label: str | None = None,
    runbook: str = "engine-container",
) -> CheckResult:
    """``fact``: facts/engine.py's EngineContainer; ``serve_expected``: the Plan's serve spec
    (Ray head only: the serve command must be alive inside the container); ``label``: what the
    container is (a Dynamo group's ``decode worker 2``), named before it; ``runbook``: the one
    a stopped or crash-looping container points to (a Dynamo pool's or control plane's own)."""
    if label is not None:
        container = f"{label} ({container})"
    expected = f"{container} running, 0 restarts" + (
        ", serve command alive" if serve_expected else ""
    )
    action = "pyinfra -y INVENTORY deploys/restart.py; read `docker logs` first"
    if fact is None:
        return _r(
            "engine_containers",
            node,
            Status.UNKNOWN,
            error or "node unreachable over SSH",
            expected,
            "check the node first",
            "engine-container" if error else "node-down",
        )
    if not fact.get("docker"):
        return _r(
            "engine_containers",
            node,
            Status.FAIL,
            "docker is not installed",
            expected,
            "provision the node (deploys/provision.py)",
            "container-runtime",
        )
    restarts = int(fact.get("restart_count") or 0)
    status = str(fact.get("status"))
    if not fact.get("exists"):
        return _r(
            "engine_containers",
            node,
            Status.FAIL,
            f"{container} absent",
            expected,
            action,
            runbook,
        )
    if status == "restarting" or restarts >= RESTARTS_FAIL:
        return _r(
            "engine_containers",
            node,
            Status.FAIL,
            f"{container} {status}, {restarts} restarts (crash loop)",
            expected,
            action,
            runbook,
        )
    if not fact.get("running") or status == "paused":  # paused: Docker says running, it is not
        return _r(
            "engine_containers",
            node,
            Status.FAIL,
            f"{container} {status}",
            expected,
            action,
            runbook,
        )
    if serve_expected is not None and fact.get("serve_spec") is None:
        return _r(
            "engine_containers",
            node,
            Status.FAIL,
            f"{container} running, the serve command in it has exited",
            expected,
            action,
            runbook,
        )
    if serve_expected is not None and fact.get("serve_spec") != serve_expected:
        return _r(
            "engine_containers",
            node,
            Status.WARN,
            f"{container} serves spec {fact.get('serve_spec')}, not the Plan's",
            expected,
            "pyinfra -y INVENTORY deploys/serve.py",
            runbook,
        )
    if restarts:
        return _r(
            "engine_containers",
            node,
            Status.WARN,
            f"{container} running, restarted {restarts} times",
            expected,
            "read `docker logs`; it crashed and was restarted",
            runbook,
        )
    return _r("engine_containers", node, Status.OK, f"{container} running, 0 restarts", expected)


def worker_health(node: str, component: Component, health: dict[int, int] | None) -> CheckResult:
    """A running Dynamo worker's system ``/health`` (``health``: port -> HTTP status, 0 no
    answer; None: not asked, no curl on the node)."""
    port = component.system_port
    what = f"{component.label} ({component.container}) system /health on port {port}"
    expected = f"{what}: 200"
    status = None if health is None else health.get(int(port or 0))
    if status is None:
        return _r(
            "dynamo_worker_health",
            node,
            Status.UNKNOWN,
            f"{what}: not asked (no curl on the node)",
            expected,
            "install curl on the node, or ask it by hand",
        )
    if status == 200:
        return _r("dynamo_worker_health", node, Status.OK, f"{what}: 200", expected)
    answer = "no answer" if status == 0 else f"HTTP {status}"
    return _r(
        "dynamo_worker_health",
        node,
        Status.FAIL,
        f"{what}: {answer}",
        expected,
        f"read `docker logs {component.container}` on {node}; pyinfra -y INVENTORY "
        "deploys/restart.py",
        dynamo_checks.pool_runbook(component.pool),
    )


def ray_nodes(
    plan: Plan, status_text: str | None, alive: dict[str, float] | None, head_running: bool
) -> list[CheckResult]:
    """One result per planned node of the Plan's Ray layout. ``alive``: the nodes probe
    ({address: GPUs}), read only when ``ray status`` is short (None: not read or unreadable)."""
    ray = plan.layout.ray
    if ray is None:
        return []
    want = ray.planned()
    nodes, gpus = len(ray.nodes), ray.gpus
    head = ray.head
    expected = f"{nodes} nodes, {gpus:g} GPUs in Ray"
    action = "pyinfra -y INVENTORY deploys/restart.py"
    if not head_running or status_text is None:
        why = "head container not running" if not head_running else "`ray status` unreadable"
        return [_r("ray_nodes", head, Status.UNKNOWN, why, expected, action, "ray-nodes")]
    seen = ray_status.parse(status_text)
    if seen.layout == "none":
        line = status_text.strip().splitlines()[-1:] or ["(empty)"]
        return [
            _r(
                "ray_nodes",
                head,
                Status.FAIL,
                f"no Ray cluster: {line[0][:120]}",
                expected,
                action,
                "ray-nodes",
            )
        ]
    observed = f"Ray: {seen.nodes}/{nodes} nodes, {seen.gpus:g}/{gpus:g} GPUs"
    if not ray.is_short(seen):
        return [_r("ray_nodes", name, Status.OK, observed, expected) for name in want]
    if alive is None:
        return [
            _r(
                "ray_nodes",
                head,
                Status.FAIL,
                observed + " (missing nodes not named)",
                expected,
                action,
                "ray-nodes",
            )
        ]
    gaps = {name: why for name, _, why in ray_status.missing(want, alive)}
    if not gaps:  # short in total, but every planned node is there: say so on the head
        return [_r("ray_nodes", head, Status.FAIL, observed, expected, action, "ray-nodes")]
    return [
        _r(
            "ray_nodes",
            name,
            Status.FAIL,
            f"{observed}; {address}: {gaps[name]}",
            f"{address} in Ray with {g:g} GPUs",
            action,
            "ray-nodes",
        )
        if name in gaps
        else _r("ray_nodes", name, Status.OK, f"{address} in Ray", f"{address} in Ray")
        for name, (address, g) in want.items()
    ]


def weights(node: str, path: str, state: dict[str, Any] | None) -> CheckResult:
    """The manifest and the files it lists (size and mtime as recorded at verification)."""
    expected = f"{path}: manifest, every listed file unchanged"
    action = "pyinfra -y INVENTORY deploys/weights.py, then deploys/restart.py"
    if state is None:
        return _r(
            "weights",
            node,
            Status.UNKNOWN,
            "weights state unreadable",
            expected,
            "check the node (python3 present?)",
            "weights-corrupt",
        )
    manifest = state.get("manifest")
    if not manifest:
        return _r(
            "weights",
            node,
            Status.FAIL,
            "no ironserve-manifest.json",
            expected,
            action,
            "weights-corrupt",
        )
    listed = manifest.get("files") or {}
    stats = state.get("stat") or {}
    missing = sorted(p for p in listed if p not in stats)
    changed = sorted(
        p
        for p, entry in listed.items()
        if p in stats and stats[p] != [entry.get("size"), entry.get("mtime_ns")]
    )
    if missing or changed or not listed:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
        if changed:
            parts.append(
                f"changed since verified {', '.join(changed[:3])}"
                + (" ..." if len(changed) > 3 else "")
            )
        return _r(
            "weights",
            node,
            Status.FAIL,
            "; ".join(parts) or "manifest lists no files",
            expected,
            action,
            "weights-corrupt",
        )
    size = sum(int(e.get("size") or 0) for e in listed.values())
    return _r(
        "weights",
        node,
        Status.OK,
        f"{manifest.get('repo_id')}: {len(listed)} files, {size / 2**20:.0f} MiB",
        expected,
    )


def npu_pings(
    node: str, targets: list[tuple[int, str]], found: dict[tuple[int, str], PingResult] | None
) -> CheckResult:
    expected = f"{len(targets)} peer NPU addresses answer"
    if found is None:
        return _r(
            "npu_ping",
            node,
            Status.UNKNOWN,
            "pings did not run (timeout)",
            expected,
            "",
            "npu-link",
        )
    if not found:
        return _r(
            "npu_ping",
            node,
            Status.UNKNOWN,
            "hccn_tool missing",
            expected,
            "install the Ascend driver (deploys/provision.py)",
            "npu-link",
        )
    lost = []
    for device, address in targets:
        result = found.get((device, address))
        if result is None or not result["received"]:
            lost.append(f"npu{device}->{address}")
    if lost:
        return _r(
            "npu_ping",
            node,
            Status.FAIL,
            f"no answer: {', '.join(lost[:4])}" + (" ..." if len(lost) > 4 else ""),
            expected,
            "check the NPU links (hccn_tool -link -g), cables, switch ports",
            "npu-link",
        )
    return _r("npu_ping", node, Status.OK, f"{len(targets)} peers answer", expected)


def ping_targets(group: ServingGroup, node: str) -> list[tuple[int, str]]:
    """(local device, peer address): device i pings device i of every other node of the group."""
    me = next(n for n in group.nodes if n.name == node)
    targets = []
    for peer in group.nodes:
        if peer.name == node:
            continue
        for device, address in enumerate(peer.npu.device_ips):
            if device < len(me.npu.device_ips):
                targets.append((device, str(address)))
    return targets


# --- gathering (SSH, all nodes at once) --------------------------------------------------------


@dataclass
class NodeFacts:
    reachable: bool = False
    container: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    pings: dict[tuple[int, str], PingResult] | None = None
    ray_alive: dict[str, float] | None = None
    errors: list[str] = field(default_factory=list)
    # A Dynamo node: each of its containers' fact by name, its workers' system /health.
    containers: dict[str, dict[str, Any]] | None = None
    system_health: dict[int, int] | None = None
    # ...and their /metrics, read where /health answered 200 (None: not read; see errors).
    worker_metrics: dict[int, tuple[int, str]] | None = None
    # A Dynamo head with etcd and NATS: discovery as the frontend sees it (None: not read).
    discovery: dict[str, Any] | None = None
    discovery_read: bool = False


def _gather(state: Any, host: Any, gp: GroupPlan) -> NodeFacts:
    from ironserve.facts.engine import EngineContainer

    facts = NodeFacts()
    launch = gp.plan.node(host.name)
    head_ray = gp.ray and launch.serve_exec is not None
    with transport.on(state, host) as connected:
        if not connected:
            return facts
        facts.reachable = True
        if gp.dynamo:
            _gather_dynamo(host, gp, facts)
        else:
            try:
                facts.container = host.get_fact(
                    EngineContainer,
                    container=launch.container.name,
                    serve=head_ray,
                    ray=head_ray,
                    _timeout=CHECK_TIMEOUT_S,
                )
            except Exception as error:  # a timeout: UNKNOWN, never OK
                facts.errors.append(f"container: {error}")
        try:
            facts.weights = host.get_fact(
                WeightsState,
                dest=gp.plan.context.weights_path,
                venv="/nonexistent",
                _timeout=CHECK_TIMEOUT_S,
            )
        except Exception as error:
            facts.errors.append(f"weights: {error}")
        targets = tuple(ping_targets(gp.group, host.name))
        if targets:
            try:
                facts.pings = host.get_fact(NpuPeerPings, targets=targets, _timeout=CHECK_TIMEOUT_S)
            except Exception as error:
                facts.errors.append(f"pings: {error}")
        status_text = (facts.container or {}).get("ray_status")
        ray = gp.plan.layout.ray
        if head_ray and ray is not None and status_text:
            seen = ray_status.parse(status_text)
            if seen.layout != "none" and ray.is_short(seen):  # a cluster, short: name the gaps
                facts.ray_alive = _probe_ray(state, host, ray.probe_command())
    return facts


def _gather_dynamo(host: Any, gp: GroupPlan, facts: NodeFacts) -> None:
    """Each Dynamo container of the node, then the running workers' system /health; on the
    head, etcd's registrations and NATS's health."""
    from ironserve.facts.dynamo import DynamoDiscovery
    from ironserve.facts.engine import DynamoSystemHealth, DynamoWorkerMetrics, EngineContainer

    urls = gp.control_plane
    if host.name == gp.head and urls is not None:
        try:
            facts.discovery = host.get_fact(
                DynamoDiscovery, etcd=urls[0], nats=urls[1], _timeout=CHECK_TIMEOUT_S
            )
            facts.discovery_read = True
        except Exception as error:  # a timeout: UNKNOWN, never OK
            facts.errors.append(f"discovery: {error}")

    facts.containers = {}
    for c in gp.components(host.name):
        try:
            facts.containers[c.container] = host.get_fact(
                EngineContainer, container=c.container, _timeout=CHECK_TIMEOUT_S
            )
        except Exception as error:  # a timeout: UNKNOWN, never OK
            facts.errors.append(f"{c.container}: {error}")
    ports = tuple(
        int(c.system_port)
        for c in gp.components(host.name)
        if c.system_port is not None and (facts.containers.get(c.container) or {}).get("running")
    )
    if ports:
        try:
            facts.system_health = host.get_fact(
                DynamoSystemHealth, ports=ports, _timeout=CHECK_TIMEOUT_S
            )
        except Exception as error:
            facts.errors.append(f"system /health: {error}")
    # A worker whose /health does not answer is FAILed there: its /metrics would only time out.
    healthy = tuple(p for p in ports if (facts.system_health or {}).get(p) == 200)
    if healthy:
        try:
            facts.worker_metrics = host.get_fact(
                DynamoWorkerMetrics, ports=healthy, _timeout=CHECK_TIMEOUT_S
            )
        except Exception as error:  # a timeout: UNKNOWN, never OK
            facts.errors.append(f"system /metrics: {error}")


def _probe_ray(state: Any, host: Any, command: str) -> dict[str, float] | None:
    result = transport.run(state, host, command, timeout=CHECK_TIMEOUT_S)
    try:
        return ray_status.parse_nodes_probe(result.stdout) if result.ok else None
    except ValueError:
        return None


def judge_group(gp: GroupPlan, facts: dict[str, NodeFacts]) -> list[CheckResult]:
    """Every cluster-tier result of one group from its nodes' facts (nodes not in ``facts`` were
    left out by ``--node``)."""
    head = gp.plan.nodes[0]
    head_facts = facts.get(head.node)
    head_container = head_facts.container if head_facts is not None else None
    if gp.dynamo and head_facts is not None:
        head_container = (head_facts.containers or {}).get(gp.head_container)
    # NPU peer pings judge the fabric, not the engine: they run deployed or not.
    pings = [
        npu_pings(name, targets, f.pings)
        for name, f in facts.items()
        if f.reachable and (targets := ping_targets(gp.group, name))
    ]
    if head_container and head_container.get("docker") and not head_container.get("exists"):
        return [not_deployed(gp), *pings]
    results: list[CheckResult] = list(pings)
    for launch in gp.plan.nodes:
        f = facts.get(launch.node)
        if f is None:
            continue
        serve = spec.serve_hash(launch) if gp.ray else None
        why = "; ".join(f.errors) or "container state unreadable" if f.reachable else None
        if gp.dynamo:
            discovery = head_facts.discovery if head_facts is not None else None
            results += judge_dynamo_node(gp, launch.node, f, why, discovery)
        else:
            results.append(
                engine_container(launch.node, launch.container.name, f.container, serve, why)
            )
        if f.reachable:
            results.append(weights(launch.node, gp.plan.context.weights_path, f.weights))
    if gp.ray and head_facts is not None and head_facts.reachable:
        container = head_facts.container or {}
        rows = ray_nodes(
            gp.plan,
            container.get("ray_status"),
            head_facts.ray_alive,
            bool(container.get("running")),
        )
        results.extend(r for r in rows if r.node in facts)
    return results


def judge_dynamo_node(
    gp: GroupPlan,
    node: str,
    f: NodeFacts,
    why: str | None,
    discovery: dict[str, Any] | None = None,
) -> list[CheckResult]:
    """Every Dynamo container of ``node`` (named with its pool), each running worker's system
    /health and registration in etcd (``discovery``: the head's DynamoDiscovery); on the head,
    the control plane itself."""
    results = []
    urls = gp.control_plane
    if node == gp.head and urls is not None and f.reachable:
        if f.discovery_read:
            results.append(dynamo_checks.control_plane(node, *urls, f.discovery))
        else:
            results.append(
                _r(
                    "dynamo_control_plane",
                    node,
                    Status.UNKNOWN,
                    "; ".join(f.errors) or "discovery not read",
                    f"etcd answers at {urls[0]}, NATS /healthz 200 at {urls[1]}",
                    "check the head first",
                    dynamo_checks.CONTROL_PLANE,
                )
            )
    for c in gp.components(node):
        fact = (f.containers or {}).get(c.container) if f.reachable else None
        runbook = dynamo_checks.pool_runbook(c.pool)
        if c.pool is None and c.label in ("etcd", "NATS"):
            runbook = dynamo_checks.CONTROL_PLANE
        results.append(
            engine_container(node, c.container, fact, None, why, label=c.label, runbook=runbook)
        )
        if c.system_port is not None and fact is not None and fact.get("running"):
            results.append(worker_health(node, c, f.system_health))
            if (f.system_health or {}).get(int(c.system_port)) == 200:
                scrape = (f.worker_metrics or {}).get(int(c.system_port))
                unread = "; ".join(f.errors) if f.worker_metrics is None else "not in the answer"
                results.append(dynamo_worker_metrics.judge_worker(node, c, scrape, unread))
            if urls is not None and c.registers:
                address = gp.address(node)
                results.append(dynamo_checks.registration(node, address, c, discovery))
    return results


def run_cluster_tier(
    inventory_path: str, plans: list[GroupPlan], node: str | None = None, state: Any = None
) -> list[CheckResult]:
    state = state if state is not None else transport.open_state(inventory_path)
    jobs: dict[tuple[str, str], Any] = {}
    for gp in plans:
        for launch in gp.plan.nodes:
            # --node: that node, plus its group's head (whether the group is deployed, Ray)
            if node is not None and launch.node not in (node, gp.head):
                continue
            host = state.inventory.get_host(launch.node)
            jobs[(gp.name, launch.node)] = gevent.spawn(_gather, state, host, gp)
    gevent.joinall(list(jobs.values()))
    results: list[CheckResult] = []
    for gp in plans:
        facts = {
            name: job.value if job.successful() else NodeFacts()
            for (group, name), job in jobs.items()
            if group == gp.name
        }
        if not facts:
            continue
        rows = judge_group(gp, facts)
        results.extend(
            r for r in rows if node is None or r.node == node or r.check == "cluster.deployed"
        )
    return results


def _head_container(state: Any, gp: GroupPlan) -> dict[str, Any] | None:
    from ironserve.facts.engine import EngineContainer

    host = state.inventory.get_host(gp.head)
    try:
        fact: dict[str, Any] = transport.fact(
            state,
            host,
            EngineContainer,
            container=gp.head_container,
            timeout=CHECK_TIMEOUT_S,
        )
    except ConnectionError:
        return None
    return fact


def deployed(state: Any, plans: list[GroupPlan]) -> list[CheckResult]:
    """Only the ``cluster.deployed`` WARNs (groups whose head has no engine container)."""
    jobs = [(gp, gevent.spawn(_head_container, state, gp)) for gp in plans]
    gevent.joinall([j for _, j in jobs])
    return [
        not_deployed(gp)
        for gp, job in jobs
        if job.successful()
        and job.value is not None
        and job.value.get("docker")
        and not job.value.get("exists")
    ]
