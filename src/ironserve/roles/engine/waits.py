"""The waits of a serve run, executed on the control machine (``python.call``) once the
containers exist: the Ray cluster complete, the engine ready, a real completion.

Each has a timeout and says what it waits for; a failure names the node or quotes the log.
Commands on the node go through the host's own pyinfra connector (the run's SSH connection).
"""

from __future__ import annotations

import shlex
import time
from typing import Any

import httpx
from pyinfra import logger
from pyinfra.api.command import StringCommand

from ironserve.engines.dynamo import components, control_plane_urls
from ironserve.facts.dynamo import discovery_command, parse_discovery, registered_at
from ironserve.roles.engine.decide import GroupServe
from ironserve.roles.engine.defaults import EngineData
from ironserve.serving import ray_status, readiness, spec
from ironserve.serving.apikey import read_key, redact

PROGRESS_EVERY_S = 30.0


def _run(host: Any, command: str) -> tuple[bool, str]:
    ok, output = host.run_shell_command(StringCommand(command))
    return bool(ok), str(output.output)


def wait_for_ray(state: Any, host: Any, group: GroupServe) -> None:
    """Until `ray status` in the head shows every planned node and GPU; else name the gaps."""
    head = group.nodes[0].launch
    ray = group.plan.layout.ray
    if ray is None:
        raise RuntimeError(f"serving group {group.name}: the Plan has no Ray layout")
    want = ray.planned()
    nodes, gpus = len(ray.nodes), ray.gpus
    data = EngineData.of(host)
    timeout, poll = data.serve_ray_timeout, data.serve_poll_interval
    status_cmd = ray.status_command()
    started = time.monotonic()
    seen = ray_status.RayStatus(0, 0.0, 0.0, "none")
    while True:
        ok, out = _run(host, status_cmd)
        if ok:
            seen = ray_status.parse(out)
            if not ray.is_short(seen):
                logger.info(
                    f"{host.print_prefix}Ray: {seen.nodes} nodes, {seen.gpus:g} GPUs after "
                    f"{time.monotonic() - started:.1f}s"
                )
                return
        if time.monotonic() - started >= timeout:
            break
        time.sleep(poll)
    ok, out = _run(host, ray.probe_command())
    try:
        alive = ray_status.parse_nodes_probe(out) if ok else {}
        gaps = ray_status.missing(want, alive)
    except ValueError:
        gaps = [
            (name, address, "unknown (Ray's node list unreadable)")
            for name, (address, _) in want.items()
        ]
    down = set(group.unreachable)
    named = "; ".join(
        f"{name} ({address}): {why}"
        + (" -- its SSH connection failed in this run (node down?)" if name in down else "")
        for name, address, why in gaps
    )
    raise RuntimeError(
        f"Ray in {head.container.name} on {head.node} shows {seen.nodes}/{nodes} nodes and "
        f"{seen.gpus:g}/{gpus:g} GPUs after {timeout:g}s (serve_ray_timeout). Missing: "
        f"{named or 'none named by Ray (check `ray status` in the head)'}"
    )


def _restarts(host: Any, container: str) -> int | None:
    ok, out = _run(host, f"docker inspect -f '{{{{.RestartCount}}}}' {shlex.quote(container)}")
    return int(out.strip()) if ok and out.strip().isdigit() else None


def _alive(host: Any, group: GroupServe, restarts_at_start: int | None) -> tuple[bool, str]:
    """Whether the serving process still runs (the serve command in a Ray head, else the
    container itself -- a Dynamo group's frontend --, not crash-looping), with the reason when
    not."""
    container = group.api_container
    name = shlex.quote(container)
    ok, out = _run(host, f"docker inspect -f '{{{{.State.Status}}}}' {name}")
    if not ok or out.strip() not in ("running", "restarting"):
        return False, f"container {container} is {out.strip() or 'gone'}"
    now = _restarts(host, container)
    limit = EngineData.of(host).serve_ready_restarts
    if restarts_at_start is not None and now is not None and now - restarts_at_start >= limit:
        return False, (
            f"container {container} restarted {now - restarts_at_start} times while "
            "loading (a crash loop)"
        )
    if group.ray:
        ok, _ = _run(host, spec.docker_exec_sh(container, spec.serve_probe()))
        if not ok:
            return False, f"the serve command in {container} exited"
    return True, ""


def logs_command(group: GroupServe) -> str:
    """The log tails the readiness wait reads for progress and stalls: the API container's, and
    under Dynamo also the serving node's own workers' (loading the weights, they print progress
    while the frontend is silent)."""
    names = [group.api_container] + [
        c.name for c in group.serving.wave("workers") if c.name != group.api_container
    ]
    return "; ".join(f"docker logs --tail 60 {shlex.quote(n)} 2>&1" for n in names)


def served(models: object, name: str) -> bool:
    """Whether a ``GET /v1/models`` body lists ``name`` (a Dynamo frontend lists a model once a
    worker serving it has registered; its /health answers before)."""
    data = models.get("data") if isinstance(models, dict) else None
    return isinstance(data, list) and any(isinstance(m, dict) and m.get("id") == name for m in data)


def registrations_settled(group: GroupServe, found: dict[str, Any] | None) -> bool:
    """Whether etcd holds exactly one registration per planned Dynamo worker (none left by a
    dead process: the KV router would send requests to it, which fail with 503)."""
    if found is None or found.get("etcd") is not None:
        return False
    ctx = group.plan.context
    return all(
        len(registered_at(found, target.address, c.system_port)) == 1
        for target in ctx.nodes
        for c in components(ctx, target.name)
        if c.registers
    )


def _ready(host: Any, group: GroupServe, bearer: dict[str, str]) -> bool:
    if httpx.get(group.plan.endpoint.health_url, headers=bearer, timeout=5).status_code != 200:
        return False
    ctx = group.plan.context
    if ctx.dynamo is None:
        return True
    answer = httpx.get(f"{group.plan.endpoint.url}/models", headers=bearer, timeout=5)
    if answer.status_code != 200 or not served(answer.json(), ctx.served_name):
        return False
    urls = control_plane_urls(ctx)
    if urls is None:  # file discovery: no etcd to read
        return True
    ok, out = _run(host, discovery_command(*urls))
    return ok and registrations_settled(group, parse_discovery(out.splitlines()))


def wait_ready(state: Any, host: Any, group: GroupServe) -> None:
    """Until GET /health answers 200 (a Dynamo group: and /v1/models lists the served model, and
    etcd holds one registration per planned worker: a worker killed just before a restart
    leaves its registration until its lease expires, 10-25 s on the lab's Dynamo 1.6.1, and
    requests the KV router sends to it fail with 503), reading the engine log for progress and
    stalls."""
    node = group.serving.launch
    url = group.plan.endpoint.health_url
    data = EngineData.of(host)
    poll = data.serve_poll_interval
    now = time.monotonic()
    watch = readiness.LoadWatch(
        started=now, stall_s=data.serve_stall_timeout, total_s=data.serve_ready_timeout
    )
    logs = logs_command(group)
    restarts = _restarts(host, group.api_container)
    key = read_key(group.key_file)  # SGLang logs its server_args, the key among them
    bearer = {"Authorization": f"Bearer {key}"}
    said = now
    what = f"{node.node}: {url}"
    while True:
        try:
            # With the key: the gateway guards /health too (unless serving_public_health).
            if _ready(host, group, bearer):
                logger.info(
                    f"{host.print_prefix}engine ready at {url} after "
                    f"{time.monotonic() - watch.started:.1f}s"
                )
                return
        except (httpx.HTTPError, ValueError):  # ValueError: a body that is not JSON
            pass
        alive, why = _alive(host, group, restarts)
        _, log = _run(host, logs)
        log = redact(log, key)
        now = time.monotonic()
        if not alive:
            raise readiness.NotReady(
                f"{what}: {why} before it was ready. Log tail:\n"
                + "\n".join(log.strip().splitlines()[-15:])
            )
        watch.observe(now, log)
        watch.verdict(now, what)
        if now - said >= PROGRESS_EVERY_S:
            said = now
            progress = readiness.progress_of(log) or readiness.last_line(log)
            logger.info(
                f"{host.print_prefix}waiting for {url} ({now - watch.started:.0f}s): {progress}"
            )
        time.sleep(poll)


def prove_completion(state: Any, host: Any, group: GroupServe) -> None:
    """A real chat completion with the key; the same request without it must be refused."""
    node = group.serving.launch
    ctx = group.plan.context
    base = group.plan.endpoint.url
    key = read_key(group.key_file)
    data = EngineData.of(host)
    body = {
        "model": ctx.served_name,
        "messages": [{"role": "user", "content": data.serve_completion_prompt}],
        "max_tokens": data.serve_completion_max_tokens,
    }
    timeout = data.serve_completion_timeout
    started = time.monotonic()
    answer = httpx.post(
        f"{base}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    )
    if answer.status_code != 200:
        raise RuntimeError(
            f"{node.node}: chat completion at {base} answered HTTP {answer.status_code}: "
            f"{answer.text[:300]}"
        )
    choice = answer.json()["choices"][0]["message"].get("content") or ""
    if not choice.strip():
        raise RuntimeError(f"{node.node}: chat completion at {base} is empty")
    if group.plan.api_key.enforced:  # MindIE without the gateway has no key (engines/mindie.py)
        refused = httpx.get(f"{base}/models", timeout=30)
        if refused.status_code not in (401, 403):
            raise RuntimeError(
                f"{node.node}: {base}/models answers HTTP {refused.status_code} without the "
                "API key; it must refuse"
            )
    logger.info(
        f"{host.print_prefix}chat completion from {ctx.served_name} at {base} in "
        f"{time.monotonic() - started:.2f}s: {choice.strip()[:80]!r}"
    )
