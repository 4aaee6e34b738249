"""`ironserve monitoring render`: the files roles/monitoring puts on the Prometheus node, written
from the inventory's Plans with no node contacted; bad input exits 2 naming host and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ironserve.cli import app
from tests.conftest import ROOT

runner = CliRunner()
GOLDEN = ROOT / "tests" / "golden" / "monitoring"
SITE = "h100x8_2node_r1_vllm"


def _site(tmp_path: Path, **group_data: object) -> Path:
    """A copy of the H100 example site with ``group_data`` added to its group data file."""
    folder = tmp_path / "site"
    (folder / "group_data").mkdir(parents=True)
    shutil.copy(ROOT / "inventories" / f"{SITE}.py", folder / f"{SITE}.py")
    extra = "".join(f"{key} = {value!r}\n" for key, value in group_data.items())
    data = (ROOT / "inventories" / "group_data" / f"{SITE}.py").read_text()
    (folder / "group_data" / f"{SITE}.py").write_text(data + extra)
    return folder / f"{SITE}.py"


def test_writes_what_the_role_deploys(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["monitoring", "render", "-i", str(_site(tmp_path)), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["server"] == "h100-a"  # no monitoring_server: the first group's API node
    assert set(doc["files"]) == {
        "prometheus.yml",
        "alerts.yml",
        "grafana-dashboard.json",
        "dcgm-counters.csv",  # an NVIDIA site: dcgm-exporter's counters
    }
    # Byte for byte the role's goldens for this site (tests/golden/test_golden_monitoring.py).
    pairs = {
        "prometheus.yml": "prometheus.yml.h100x8-2node",
        "alerts.yml": "alerts.yml.h100x8-2node",
        "grafana-dashboard.json": "grafana-dashboard.json",
        "dcgm-counters.csv": "dcgm-counters.csv",
    }
    for name, golden in pairs.items():
        assert Path(doc["files"][name]) == out / name
        assert (out / name).read_text() == (GOLDEN / golden).read_text(), name


def test_the_sites_monitoring_keys_are_used(tmp_path: Path) -> None:
    inventory = _site(tmp_path, monitoring_node_exporter_port=9200, monitoring_server="h100-b")
    out = tmp_path / "out"
    result = runner.invoke(app, ["monitoring", "render", "-i", str(inventory), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "h100-b" in result.stdout
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: sorted(t for c in job["static_configs"] for t in c["targets"])
        for job in config["scrape_configs"]
    }
    assert targets["node"] == ["10.10.0.11:9200", "10.10.0.12:9200"]


def test_bad_input_exits_2_naming_host_and_field(tmp_path: Path) -> None:
    out = tmp_path / "out"
    unknown = _site(tmp_path / "a", monitoring_server="h100-z")
    result = runner.invoke(app, ["monitoring", "render", "-i", str(unknown), "--out", str(out)])
    assert result.exit_code == 2
    assert "h100-a: monitoring_server: 'h100-z' is not a host" in result.stderr.splitlines()

    misspelt = _site(tmp_path / "b", monitoring_node_exporter_prot=9200)
    result = runner.invoke(app, ["monitoring", "render", "-i", str(misspelt), "--out", str(out)])
    assert result.exit_code == 2
    assert "monitoring_node_exporter_prot" in result.stderr
    assert "did you mean 'monitoring_node_exporter_port'" in result.stderr
    assert not out.exists()  # nothing written on bad input

    a_file = tmp_path / "file"
    a_file.write_text("")
    result = runner.invoke(
        app, ["monitoring", "render", "-i", str(_site(tmp_path / "c")), "--out", str(a_file)]
    )
    assert result.exit_code == 2 and "--out" in result.stderr
