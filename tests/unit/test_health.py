"""Health verdicts on real captured outputs (tests/fixtures/outputs, see SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ironserve.cli import app
from ironserve.facts.nvidia import parse_nvidia_gpus, parse_xid_lines
from ironserve.health import RUNBOOKS
from ironserve.health import node_checks as nc
from ironserve.health.model import CheckResult, Status, exit_code

OUTPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"


def _lines(name: str) -> list[str]:
    return (OUTPUTS / name).read_text().splitlines()


def _result(status: Status) -> CheckResult:
    return CheckResult("x", "node", "n1", status, "", "")


def test_exit_codes_worst_wins_fail_over_unknown_over_warn() -> None:
    assert exit_code([]) == 0
    assert exit_code([_result(Status.OK)]) == 0
    assert exit_code([_result(Status.OK), _result(Status.WARN)]) == 1
    assert exit_code([_result(Status.WARN), _result(Status.UNKNOWN)]) == 3
    assert exit_code([_result(Status.UNKNOWN), _result(Status.FAIL), _result(Status.WARN)]) == 2


def test_xid79_from_real_dmesg_is_fail_with_runbook() -> None:
    result = nc.gpu_xid("n1", parse_xid_lines(_lines("dmesg-xid79.txt")))
    assert (result.status, result.runbook) == (Status.FAIL, "gpu-xid")
    assert result.observed.startswith("xid 79")
    assert result.runbook in RUNBOOKS


def test_no_xid_is_ok_and_unreadable_log_is_unknown() -> None:
    assert nc.gpu_xid("n1", []).status is Status.OK
    assert nc.gpu_xid("n1", None).status is Status.UNKNOWN


def test_gpu_count_against_plan_from_real_query_output() -> None:
    gpus = parse_nvidia_gpus(_lines("nvidia-smi-query-gpu.h100.590.csv"))
    assert len(gpus) == 1
    assert nc.gpu_count("n1", gpus, 1).status is Status.OK
    missing = nc.gpu_count("n1", gpus, 8)
    assert (missing.status, missing.observed, missing.expected) == (Status.FAIL, "1", "8")
    assert missing.runbook == "gpu-missing"
    assert nc.gpu_count("n1", None, 8).status is Status.UNKNOWN  # no nvidia-smi: never OK


def test_ecc_and_row_remap_verdicts() -> None:
    gpus = parse_nvidia_gpus(_lines("nvidia-smi-query-gpu.h100.590.csv"))
    assert [r.status for r in nc.gpu_ecc("n1", gpus)] == [Status.OK, Status.OK]
    bad = [{**gpus[0], "ecc_uncorrected_volatile": 2, "remapped_rows_pending": True}]
    ecc, remap = nc.gpu_ecc("n1", bad)  # type: ignore[arg-type]
    assert (ecc.status, ecc.runbook) == (Status.FAIL, "gpu-ecc")
    assert (remap.status, remap.runbook) == (Status.FAIL, "gpu-row-remap")


def test_unreachable_node_is_fail() -> None:
    result = nc.unreachable("n1", "timeout")
    assert (result.status, result.runbook) == (Status.FAIL, "node-down")
    assert "unreachable" in result.observed


def test_bad_inventory_exits_2_before_ssh(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["health", "-i", str(tmp_path / "nope.py")])
    assert missing.exit_code == 2
    assert "inventory" in missing.output
    empty = tmp_path / "inv.py"
    empty.write_text("hosts = []\n")
    assert CliRunner().invoke(app, ["health", "-i", str(empty)]).exit_code == 2
    bad_tier = CliRunner().invoke(app, ["health", "-i", str(empty), "--tier", "bogus"])
    assert bad_tier.exit_code == 2
