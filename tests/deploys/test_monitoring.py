"""roles/monitoring on ``@fake`` hosts: off by default; on, exporters on every node, Prometheus
on the first head only, nothing at all on a converged node; its keys pass validation."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import PyinfraError

from ironserve.config import load_cluster
from ironserve.deploy import context
from ironserve.errors import InputError
from ironserve.roles.monitoring import deploy_monitoring
from ironserve.roles.monitoring import render as r
from ironserve.roles.monitoring.defaults import DEFAULTS
from ironserve.roles.monitoring.deploy import distinct_plans
from ironserve.roles.monitoring.facts import parse_containers
from tests.deploys import nvidia_node as node
from tests.deploys.conftest import FakeRun

HEAD, WORKER = "@fake/h100-a", "@fake/h100-b"
FOLDER = DEFAULTS["monitoring_dir"]
STAT = "stat -c 'user=%U group=%G mode=%A atime=%X mtime=%Y ctime=%Z size=%s %N'"


@pytest.fixture(autouse=True)
def _fresh_plans() -> None:
    context._RUNS.clear()


def _hosts(**data: Any) -> list[tuple[str, dict[str, Any]]]:
    base = {**node.HOST_DATA, "fake_responses": {"command -v docker": "/usr/bin/docker"}, **data}
    worker = {**base, "node_role": "worker", "node_ip": "10.10.0.12"}
    return [(HEAD, dict(base)), (WORKER, worker)]


def _run(hosts: list[tuple[str, dict[str, Any]]]) -> FakeRun:
    fake = FakeRun(hosts, {})
    fake.prepare(deploy_monitoring)
    fake.execute()
    assert fake.failed() == []
    return fake


def _ops(fake: FakeRun, name: str) -> list[str]:
    facts = ("command -v", "docker ps -a --filter", "stat -c", "sha1sum")
    return [c for c in fake.commands(name) if not any(f in c for f in facts)]


def test_off_by_default_does_nothing() -> None:
    fake = _run(_hosts())
    assert _ops(fake, HEAD) == [] and _ops(fake, WORKER) == []
    assert fake.changed_ops(HEAD) == []


def _expected(fake: FakeRun) -> dict[str, dict[str, str]]:
    """What the role renders for each host: files and container argvs."""
    plans = distinct_plans(fake.state)
    config = r.prometheus_config(r.scrape_targets(plans, DEFAULTS), DEFAULTS)
    rules = r.alert_rules(plans, DEFAULTS)
    return {
        "files": {
            f"{FOLDER}/prometheus.yml": config,
            f"{FOLDER}/alerts.yml": rules,
            f"{FOLDER}/grafana-dashboard.json": r.dashboard(),
            f"{FOLDER}/dcgm-counters.csv": r.dcgm_counters(),
        },
        "argv": {
            r.NODE_EXPORTER: shlex.join(r.node_exporter_argv(DEFAULTS)),
            r.DCGM_EXPORTER: shlex.join(r.dcgm_exporter_argv(DEFAULTS)),
            r.PROMETHEUS: shlex.join(r.prometheus_argv(DEFAULTS, r.config_digest(config, rules))),
        },
    }


def test_enabled_first_run_starts_exporters_everywhere_and_prometheus_on_the_head() -> None:
    fake = _run(_hosts(monitoring_enabled=True))
    want = _expected(fake)["argv"]
    head, worker = "\n".join(_ops(fake, HEAD)), "\n".join(_ops(fake, WORKER))
    assert want[r.NODE_EXPORTER] in head and want[r.NODE_EXPORTER] in worker
    assert want[r.DCGM_EXPORTER] in head and want[r.DCGM_EXPORTER] in worker
    assert want[r.PROMETHEUS] in head and r.PROMETHEUS not in worker
    assert f"{FOLDER}/prometheus.yml" in head and "prometheus.yml" not in worker
    assert f"docker rm -f {r.PROMETHEUS}" in head


def _converged(fake: FakeRun, host: str, stale: str | None = None) -> dict[str, Any]:
    want = _expected(fake)
    files = want["files"] if host == HEAD else {f"{FOLDER}/dcgm-counters.csv": r.dcgm_counters()}
    responses: dict[str, Any] = {}
    for path, text in files.items():
        digest = hashlib.sha1(text.encode()).hexdigest()
        responses[f"sha1sum {path}"] = f"{digest}  {path}"
        responses[f"{STAT} {path}"] = (
            f"user=root group=root mode=-rw-r--r-- atime=0 mtime=0 ctime=0 size={len(text)} "
            f"'{path}'"
        )
    responses[f"{STAT} {FOLDER} 2>"] = (
        f"user=root group=root mode=drwxr-xr-x atime=0 mtime=0 ctime=0 size=4096 '{FOLDER}'"
    )
    names = [r.NODE_EXPORTER, r.DCGM_EXPORTER] + ([r.PROMETHEUS] if host == HEAD else [])
    lines = []
    for name in names:
        spec = "0000" if name == stale else r.spec_of(shlex.split(want["argv"][name]))
        lines.append(f"{name}\t{spec}\trunning")
    # First match wins: the fact's command also contains its `command -v docker` guard.
    return {f"docker ps -a --filter label={r.SPEC_LABEL}": lines, **responses}


def test_converged_nodes_get_no_command_and_a_changed_spec_replaces_only_that_one() -> None:
    first = _run(_hosts(monitoring_enabled=True))
    hosts = _hosts(monitoring_enabled=True)
    for name, data in hosts:
        data["fake_responses"] = _converged(first, name)
    context._RUNS.clear()
    again = _run(hosts)
    assert _ops(again, HEAD) == [] and _ops(again, WORKER) == []
    hosts = _hosts(monitoring_enabled=True)
    for name, data in hosts:
        data["fake_responses"] = _converged(first, name, stale=r.DCGM_EXPORTER)
    context._RUNS.clear()
    changed = _run(hosts)
    head = "\n".join(_ops(changed, HEAD))
    assert f"docker rm -f {r.DCGM_EXPORTER}" in head
    assert r.NODE_EXPORTER not in head and r.PROMETHEUS not in head


def test_monitoring_server_must_be_a_host() -> None:
    fake = FakeRun(_hosts(monitoring_enabled=True, monitoring_server="nope"), {})
    with pytest.raises(PyinfraError, match="monitoring_server: 'nope'"):
        fake.prepare(deploy_monitoring)


def test_parse_containers() -> None:
    lines = ["ironserve-node-exporter\tabc\trunning", "", "broken line", "x\t\texited"]
    assert parse_containers(lines) == {
        "ironserve-node-exporter": ("abc", "running"),
        "x": ("", "exited"),
    }


def _site(folder: Path, extra: str) -> Path:
    (folder / "group_data").mkdir(parents=True)
    inventory = folder / "site.py"
    inventory.write_text('nodes = [("n0", {"node_role": "head", "node_ip": "10.9.0.5"})]\n')
    (folder / "group_data" / "site.py").write_text(
        'model_id = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"\n'
        'accelerator_kind = "l40s-48g"\naccelerator_count = 2\n' + extra
    )
    return inventory


def test_monitoring_keys_validate(tmp_path: Path) -> None:
    good = _site(tmp_path / "a", "monitoring_enabled = True\nmonitoring_prometheus_port = 9091\n")
    assert load_cluster(str(good)).groups[0].nodes[0].name == "n0"
    bad = _site(tmp_path / "b", "monitoring_enabeld = True\n")
    with pytest.raises(InputError, match="did you mean 'monitoring_enabled'"):
        load_cluster(str(bad))
