"""facts/dcgm.py: `dcgmi diag -j` in DCGM 3.x keys (dcgm.md 3d, the gcm tests' reduced document)
and DCGM 4.x keys (dcgm.md 3b, the test object from NVIDIA/DCGM#215, wrapped here in the 4.x root
because the issue pasted one test only; and the lab's dcgmi simulator, which prints 4.x)."""

from __future__ import annotations

import json

import pytest

from ironserve.facts.dcgm import parse_diag_json
from tests.facts.conftest import LOCAL


def test_dcgm3_keys_per_test_results_status() -> None:
    report = parse_diag_json((LOCAL / "dcgmi-diag-j.3x-reduced.json").read_text())
    assert report.dcgm == "3"
    assert len(report.tests) == 9
    assert [(t.category, t.name) for t in report.failed] == [("Deployment", "Persistence Mode")]
    env = next(t for t in report.tests if t.name == "Environment Variables")
    assert env.status == "Warn" and env.gpus == {}  # the reduced document has no gpu_id


def test_dcgm3_gpu_id_strings() -> None:
    doc = {
        "DCGM GPU Diagnostic": {
            "test_categories": [
                {
                    "category": "Integration",
                    "tests": [{"name": "PCIe", "results": [{"gpu_id": "0", "status": "Skip"}]}],
                }
            ]
        }
    }
    (test,) = parse_diag_json(json.dumps(doc)).tests
    assert (test.name, test.status, test.gpus) == ("PCIe", "Skip", {0: "Skip"})


def test_dcgm4_keys_entities_and_test_summary() -> None:
    fragment = (LOCAL / "dcgmi-diag-j.4x-fragment.txt").read_text().strip().rstrip(",")
    doc = (
        '{"DCGM Diagnostic": {"test_categories": [{"category": "Hardware", "tests": ['
        + fragment
        + "]}]}}"
    )
    report = parse_diag_json(doc)
    assert report.dcgm == "4"
    (test,) = report.tests
    assert (test.category, test.name, test.status) == ("Hardware", "diagnostic", "Pass")
    assert test.gpus == dict.fromkeys(range(8), "Pass")
    assert not report.failed


def test_dcgm4_from_the_lab_simulator_with_a_failed_gpu() -> None:
    """The lab's dcgmi (4.x layout) round-trips: a GPU with uncorrectable ECC fails `memory`."""
    from ironserve.lab.sim import dcgmi

    base = {"pci_device_id": "0x233010DE", "lost": False, "remap_pending": False}
    base["fabric"] = ("Completed", "Success")
    gpus = [{**base, "index": 0, "ecc_uncorrected": 0}, {**base, "index": 1, "ecc_uncorrected": 2}]
    report = parse_diag_json(dcgmi.json_doc(gpus, 2, "550.54.15"))
    assert report.dcgm == "4"
    assert [(t.name, t.status) for t in report.tests] == [
        ("software", "Pass"),
        ("memory", "Fail"),
        ("pcie", "Pass"),
    ]
    memory = report.failed[0]
    assert memory.gpus == {0: "Pass", 1: "Fail"}
    assert memory.warnings == ("Detected 2 volatile double-bit ECC error(s) in GPU 1.",)


def test_not_a_diag_document() -> None:
    with pytest.raises(ValueError, match="not a dcgmi diag document"):
        parse_diag_json('{"metadata": {}}')
    with pytest.raises(ValueError):
        parse_diag_json('{\n\t"DCGM GPU Diagnostic" : \n\t{\n\t\t"test_categories" : \n\t\t[\n')
