"""Golden files of roles/monitoring: prometheus.yml (scrape targets from the Plan) and alert rules
for the NVIDIA and Ascend example sites, the Grafana dashboard, the DCGM counters and every
container's `docker run` line; plus what must hold whatever the goldens say (YAML/JSON parse,
every alert names an existing runbook, only vLLM's real metric names).

Regenerate with ``IRONSERVE_UPDATE_GOLDEN=1 pytest tests/golden``, then read the diff.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ironserve.config import load_cluster
from ironserve.plan.plan import Plan, plan_group
from ironserve.roles.monitoring import render as r
from ironserve.roles.monitoring.defaults import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "monitoring"
SITES = {
    "h100x8-2node": "h100x8_2node_r1_vllm.py",
    "ascend910b-2node": "ascend910b_2node_r1_mindie.py",
    "va16": "va16_r10528_vacc.py",
}
# vLLM's metric names (vllm-project/vllm docs/usage/metrics.md; the KV-cache rename is quoted in
# ../shared/reference/outputs/vllm.md): the old name stays for engines before 0.10.
VLLM_METRICS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
}


def _plans(site: str) -> list[Plan]:
    cluster = load_cluster(str(ROOT / "inventories" / SITES[site]))
    return [plan_group(g) for g in cluster.groups]


def _argvs() -> str:
    lines = [
        shlex.join(r.node_exporter_argv(DEFAULTS)),
        shlex.join(r.dcgm_exporter_argv(DEFAULTS)),
        shlex.join(r.npu_exporter_argv(DEFAULTS, 8)),
        shlex.join(r.prometheus_argv(DEFAULTS, "0123456789abcdef")),
    ]
    return "\n".join(lines) + "\n"


CASES: dict[str, Callable[[], str]] = {
    **{
        f"prometheus.yml.{site}": (
            lambda s=site: r.prometheus_config(r.scrape_targets(_plans(s), DEFAULTS), DEFAULTS)
        )
        for site in SITES
    },
    "alerts.yml.h100x8-2node": lambda: r.alert_rules(_plans("h100x8-2node"), DEFAULTS),
    "alerts.yml.ascend910b-2node": lambda: r.alert_rules(_plans("ascend910b-2node"), DEFAULTS),
    "grafana-dashboard.json": r.dashboard,
    "dcgm-counters.csv": r.dcgm_counters,
    "containers.txt": _argvs,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    text = CASES[name]()
    path = GOLDEN / name
    if os.environ.get("IRONSERVE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden {path}: run with IRONSERVE_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_targets_follow_the_plan() -> None:
    nvidia = r.scrape_targets(_plans("h100x8-2node"), DEFAULTS)
    jobs = {(t.job, t.node) for t in nvidia}
    assert jobs == {
        ("engine", "h100-a"),
        ("node", "h100-a"),
        ("node", "h100-b"),
        ("dcgm", "h100-a"),
        ("dcgm", "h100-b"),
    }
    ascend = {t.job for t in r.scrape_targets(_plans("ascend910b-2node"), DEFAULTS)}
    assert ascend == {"engine", "node", "npu"}
    vastai = {t.job for t in r.scrape_targets(_plans("va16"), DEFAULTS)}
    assert vastai == {"engine", "node"}


def test_rules_parse_and_point_at_runbooks() -> None:
    runbooks = {p.stem for p in (ROOT / "src" / "ironserve" / "runbooks" / "data").glob("*.md")}
    for site in ("h100x8-2node", "ascend910b-2node", "va16"):
        doc = yaml.safe_load(r.alert_rules(_plans(site), DEFAULTS))
        rules = [rule for group in doc["groups"] for rule in group["rules"]]
        names = {rule["alert"] for rule in rules}
        assert {"IronserveNodeDown", "IronserveEngineDown", "IronserveKvCacheFull"} <= names
        for rule in rules:
            assert rule["annotations"]["runbook"] in runbooks, rule["alert"]
        if site == "h100x8-2node":
            assert {
                "IronserveGpuXid",
                "IronserveGpuEccUncorrectable",
                "IronserveGpuMissing",
            } <= names
            missing = next(x for x in rules if x["alert"] == "IronserveGpuMissing")
            assert "< 8" in missing["expr"]  # the Plan's GPUs per node
        if site == "ascend910b-2node":
            assert {"IronserveNpuUnhealthy", "IronserveNpuLinkDown"} <= names


def test_config_parses_and_dashboard_uses_real_metric_names() -> None:
    config = yaml.safe_load(
        r.prometheus_config(r.scrape_targets(_plans("va16"), DEFAULTS), DEFAULTS)
    )
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    dashboard = json.loads(r.dashboard())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = r.alert_rules(_plans("h100x8-2node"), DEFAULTS)
    used = set(re.findall(r"vllm:[a-z0-9_]+", " ".join(exprs) + rules))
    assert used and used <= VLLM_METRICS
    counters = {line.split(",")[0] for line in r.dcgm_counters().splitlines() if line[:1] != "#"}
    assert set(re.findall(r"DCGM_FI_[A-Z_]+", rules)) <= counters  # every alert has its counter
