"""Serving tier: each group's OpenAI endpoint as a client sees it, from the control machine.

The endpoint is the Plan's (``Plan.endpoint``: the serving node's address and port). The
four checks of a group run at once, each with its own timeout; an endpoint that does not answer
is FAIL (clients see it down), never OK:

- ``serving.health``: ``GET /health`` answers 200;
- ``serving.models``: ``GET /v1/models`` (with the key) lists the Plan's served name;
- ``serving.completion``: a real chat completion (the key, the Plan's served name) answers with
  text within the latency budget (over it: WARN);
- ``serving.metrics``: ``GET /metrics``: running and waiting requests and KV-cache usage under
  vLLM's current and deprecated names and SGLang's (facts/metrics.py). A nearly full KV cache,
  or requests waiting on a filling one, is WARN (kv-cache-full; the rule and its numbers are
  ironserve.rules.serving's, as the Prometheus alerts'); no known metric is UNKNOWN;
- ``serving.dynamo_metrics`` (a Dynamo group, instead): the frontend's ``/metrics``, its model
  ready and nothing queued (health/dynamo_checks.py).

The API key is where the Plan says (``Plan.api_key``): its file on this machine (the group's
``serving_api_key_file``, else the key a deploy generated here), read with the 0600 check;
else (another control machine deployed it) the serving node's 0600 env file over SSH. MindIE
serves no key and no vLLM metrics; neither does TensorRT-LLM's trtllm-serve (the gateway checks
the key, its /metrics is JSON).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent  # type: ignore[import-untyped]
import httpx

from ironserve.config.inventory import HostRecord
from ironserve.facts.metrics import KV_USAGE, EngineMetrics, engine_metrics
from ironserve.health import dynamo_checks
from ironserve.health.cluster_tier import GroupPlan
from ironserve.health.model import CheckResult, Status
from ironserve.rules import serving as serving_rules
from ironserve.serving import apikey

TIER = "serving"
HEALTH_TIMEOUT_S = 5.0
API_TIMEOUT_S = 10.0
COMPLETION_BUDGET_S = 15.0  # an idle engine answers 8 tokens in well under a second
DEPRECATED = {"vllm:gpu_cache_usage_perc"}


@dataclass(frozen=True)
class Endpoint:
    group: str
    node: str  # the serving node
    base: str  # http://address:port
    served_name: str
    engine: str  # vllm, sglang, mindie, vllm_vacc
    key: str | None
    key_error: str | None = None
    enforced: bool = True  # Plan.api_key.enforced: only MindIE without the gateway has no key
    runbooks: tuple[str, ...] = ()  # Dynamo: the runbooks of its worker pools' lost workers


def _r(
    check: str,
    ep: Endpoint,
    status: Status,
    observed: str,
    expected: str,
    action: str = "",
    runbook: str = "",
) -> CheckResult:
    return CheckResult(
        f"serving.{check}", TIER, ep.node, status, observed, expected, action, runbook
    )


RESTART = "pyinfra -y INVENTORY deploys/restart.py (read the engine's `docker logs` first)"


def _down(check: str, ep: Endpoint, url: str, error: Exception, expected: str) -> CheckResult:
    what = "timed out" if isinstance(error, httpx.TimeoutException) else _short(error)
    return _r(check, ep, Status.FAIL, f"{url}: {what}", expected, RESTART, "endpoint-down")


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) < 120 else text[:117] + "..."


def _headers(ep: Endpoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {ep.key}"} if ep.key else {}


def check_health(ep: Endpoint, client: httpx.Client) -> CheckResult:
    url = f"{ep.base}/health"
    try:
        answer = client.get(url, headers=_headers(ep), timeout=HEALTH_TIMEOUT_S)
    except httpx.HTTPError as error:
        return _down("health", ep, url, error, "200")
    if answer.status_code != 200:
        return _r(
            "health",
            ep,
            Status.FAIL,
            f"{url}: HTTP {answer.status_code}",
            "200",
            RESTART,
            "endpoint-down",
        )
    return _r("health", ep, Status.OK, "200", "200")


def _no_key(check: str, ep: Endpoint, expected: str) -> CheckResult | None:
    if ep.key is None and ep.enforced:
        return _r(
            check,
            ep,
            Status.UNKNOWN,
            f"no API key: {ep.key_error}",
            expected,
            "set serving_api_key_file to the key's 0600 file",
            "endpoint-down",
        )
    return None


def check_models(ep: Endpoint, client: httpx.Client) -> CheckResult:
    url = f"{ep.base}/v1/models"
    expected = f"lists {ep.served_name!r}"
    unknown = _no_key("models", ep, expected)
    if unknown:
        return unknown
    try:
        answer = client.get(url, headers=_headers(ep), timeout=API_TIMEOUT_S)
    except httpx.HTTPError as error:
        return _down("models", ep, url, error, expected)
    if answer.status_code in (401, 403):
        return _r(
            "models",
            ep,
            Status.FAIL,
            f"HTTP {answer.status_code}: the key is refused",
            expected,
            "the key file differs from the node's env file: re-run deploys/serve.py",
            "endpoint-down",
        )
    try:
        answer.raise_for_status()
        ids = [str(m["id"]) for m in answer.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        return _r(
            "models",
            ep,
            Status.FAIL,
            f"HTTP {answer.status_code}: {_short(error)}",
            expected,
            RESTART,
            "endpoint-down",
        )
    if ep.served_name not in ids:
        return _r(
            "models",
            ep,
            Status.FAIL,
            f"serves {ids}",
            expected,
            "a different model answers here: re-run deploys/serve.py",
            "change-model",
        )
    return _r("models", ep, Status.OK, f"serves {ids}", expected)


def check_completion(
    ep: Endpoint,
    client: httpx.Client,
    prompt: str = "Say hello.",
    max_tokens: int = 8,
    budget_s: float = COMPLETION_BUDGET_S,
) -> CheckResult:
    url = f"{ep.base}/v1/chat/completions"
    expected = f"text within {budget_s:g}s"
    unknown = _no_key("completion", ep, expected)
    if unknown:
        return unknown
    body = {
        "model": ep.served_name,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    }
    started = time.monotonic()
    try:
        answer = client.post(url, json=body, headers=_headers(ep), timeout=max(2 * budget_s, 5.0))
    except httpx.HTTPError as error:
        return _down("completion", ep, url, error, expected)
    took = time.monotonic() - started
    try:
        answer.raise_for_status()
        text = str(answer.json()["choices"][0]["message"].get("content") or "")
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as error:
        return _r(
            "completion",
            ep,
            Status.FAIL,
            f"HTTP {answer.status_code}: {_short(error)}",
            expected,
            RESTART,
            "endpoint-down",
        )
    if not text.strip():
        return _r(
            "completion",
            ep,
            Status.FAIL,
            f"empty answer after {took:.2f}s",
            expected,
            RESTART,
            "endpoint-down",
        )
    if took > budget_s:
        return _r(
            "completion",
            ep,
            Status.WARN,
            f"answered in {took:.2f}s",
            expected,
            "slow: check the engine metrics and run `ironserve bench`",
            "kv-cache-full",
        )
    return _r("completion", ep, Status.OK, f"answered in {took:.2f}s", expected)


def judge_metrics(ep: Endpoint, m: EngineMetrics) -> CheckResult:
    expected = serving_rules.expected_text()
    names = f"{'/'.join(KV_USAGE)}"
    if m.kv_usage is None and m.running is None and m.waiting is None:
        return _r(
            "metrics",
            ep,
            Status.UNKNOWN,
            f"no engine metrics ({names})",
            expected,
            "is the engine's /metrics on?",
            "kv-cache-full",
        )
    kv = m.kv_usage
    metric = m.kv_metric or "?"
    note = ", deprecated name" if metric in DEPRECATED else ""
    kv_text = "kv ?" if kv is None else f"kv {kv:.1%} ({metric}{note})"
    observed = f"running {_num(m.running)}, waiting {_num(m.waiting)}, {kv_text}"
    if serving_rules.kv_pressure(kv, m.waiting):
        return _r(
            "metrics",
            ep,
            Status.WARN,
            observed,
            expected,
            "requests queue on a full KV cache: lower max_num_seqs / max_len or add a group",
            "kv-cache-full",
        )
    if not m.complete:
        return _r(
            "metrics", ep, Status.UNKNOWN, observed + " (incomplete)", expected, "", "kv-cache-full"
        )
    return _r("metrics", ep, Status.OK, observed, expected)


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def check_dynamo_metrics(ep: Endpoint, client: httpx.Client) -> CheckResult:
    """A Dynamo frontend's ``dynamo_frontend_*`` metrics (health/dynamo_checks.py)."""
    url = f"{ep.base}/metrics"
    try:
        answer = client.get(url, headers=_headers(ep), timeout=API_TIMEOUT_S)
        answer.raise_for_status()
    except httpx.HTTPError as error:
        return _r(
            "dynamo_metrics",
            ep,
            Status.UNKNOWN,
            f"{url}: {_short(error)}",
            "the frontend's metrics readable",
            "see the endpoint's checks",
            "endpoint-down",
        )
    found = dynamo_checks.frontend_metrics(answer.text, ep.served_name)
    return dynamo_checks.judge_frontend(ep.node, ep.served_name, found, ep.runbooks)


def check_metrics(ep: Endpoint, client: httpx.Client) -> CheckResult | None:
    # MindIE's metrics are not vLLM's, nor is trtllm-serve's /metrics (a JSON list of
    # iteration stats): not judged here. A Dynamo frontend's are its own.
    if ep.engine == "dynamo":
        return check_dynamo_metrics(ep, client)
    if ep.engine in ("mindie", "trtllm"):
        return None
    url = f"{ep.base}/metrics"
    try:
        answer = client.get(url, headers=_headers(ep), timeout=API_TIMEOUT_S)
        if answer.status_code == 404:  # SGLang without --enable-metrics: the engine is fine
            return _r(
                "metrics",
                ep,
                Status.WARN,
                f"{url}: 404, metrics not exported",
                "engine metrics readable",
                "SGLang: add --enable-metrics to engine_extra_args",
                "kv-cache-full",
            )
        answer.raise_for_status()
    except httpx.HTTPError as error:
        return _r(
            "metrics",
            ep,
            Status.UNKNOWN,
            f"{url}: {_short(error)}",
            "engine metrics readable",
            "see the endpoint's checks",
            "endpoint-down",
        )
    return judge_metrics(ep, engine_metrics(answer.text))


# --- endpoints and keys ------------------------------------------------------------------------


def key_of(
    gp: GroupPlan, remote: Callable[[str, str], str | None] | None = None
) -> tuple[str | None, str | None]:
    """(key, None) or (None, why): the Plan's key file here, else the serving node's env file."""
    where = gp.plan.api_key
    if not where.enforced:
        return None, None
    if not where.generated or where.control_path.exists():
        try:
            return apikey.read_plan_key(where), None
        except apikey.ApiKeyError as error:
            return None, str(error)
    env_file = where.node_file
    text = remote(gp.plan.endpoint.node, env_file) if remote is not None else None
    if text:
        key = apikey.parse_key(text)
        if key:
            return key, None
    return None, f"no serving_api_key_file, no generated key, {env_file} unreadable"


def endpoint_of(gp: GroupPlan, key: str | None, key_error: str | None = None) -> Endpoint:
    ctx = gp.plan.context
    return Endpoint(
        group=gp.name,
        node=gp.plan.endpoint.node,
        base=gp.plan.endpoint.root,
        served_name=ctx.served_name,
        engine=ctx.engine.kind.value,
        key=key,
        key_error=key_error,
        enforced=gp.plan.api_key.enforced,
        runbooks=tuple(  # the decode pool's first: it registers the model the frontend serves
            dynamo_checks.pool_runbook(p.name)
            for p in sorted(
                ctx.dynamo.pools if ctx.dynamo else [], key=lambda p: p.name != "decode"
            )
        ),
    )


def check_endpoint(
    ep: Endpoint, prompt: str = "Say hello.", max_tokens: int = 8
) -> list[CheckResult]:
    """The four checks of one endpoint, at once."""
    with httpx.Client() as client:
        jobs: list[Any] = [
            gevent.spawn(check_health, ep, client),
            gevent.spawn(check_models, ep, client),
            gevent.spawn(check_completion, ep, client, prompt, max_tokens),
            gevent.spawn(check_metrics, ep, client),
        ]
        gevent.joinall(jobs)
    results = []
    for name, job in zip(("health", "models", "completion", "metrics"), jobs, strict=True):
        if job.successful():
            if job.value is not None:
                results.append(job.value)
        else:
            results.append(
                _r(
                    name,
                    ep,
                    Status.UNKNOWN,
                    f"check crashed: {job.exception}",
                    "",
                    "",
                    "endpoint-down",
                )
            )
    return results


def run_serving_tier(
    plans: list[GroupPlan],
    records: dict[str, HostRecord],
    node: str | None = None,
    remote: Callable[[str, str], str | None] | None = None,
) -> list[CheckResult]:
    """Every group's endpoint (``node``: only the group that node serves from)."""
    jobs: list[tuple[Endpoint, Any]] = []
    for gp in plans:
        ep = endpoint_of(gp, None)
        if node is not None and node != ep.node:
            continue
        head = records.get(gp.group.head.name)
        data = head.data if head else {}
        prompt = str(data.get("serve_completion_prompt") or "Say hello.")
        max_tokens = int(data.get("serve_completion_max_tokens") or 8)

        def one(gp: GroupPlan = gp, prompt: str = prompt, max_tokens: int = max_tokens) -> Any:
            key, why = key_of(gp, remote)
            return check_endpoint(endpoint_of(gp, key, why), prompt, max_tokens)

        jobs.append((ep, gevent.spawn(one)))
    gevent.joinall([job for _, job in jobs])
    results: list[CheckResult] = []
    for ep, job in jobs:
        if job.successful():
            results.extend(job.value)
        else:  # never silent: a crashed check is UNKNOWN
            results.append(
                _r(
                    "health",
                    ep,
                    Status.UNKNOWN,
                    f"check crashed: {job.exception}",
                    "200",
                    "",
                    "endpoint-down",
                )
            )
    return results
