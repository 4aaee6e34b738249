"""The per-serving-group summary of a run with unreachable nodes (ironserve.deploy.reach)."""

from __future__ import annotations

from ironserve.deploy.reach import summary_lines

MEMBERS = {"a": ["n1", "n2"], "b": ["n3"], "c": ["n4"]}


def test_summary_names_the_unreachable_node_and_its_failed_group() -> None:
    lines = summary_lines(MEMBERS, unreachable={"n2"}, failed={"n1", "n2"})
    assert lines == [
        "serving group 'a': FAILED: unreachable n2; not provisioned n1",
        "serving group 'b': ok (n3)",
        "serving group 'c': ok (n4)",
    ]


def test_summary_reports_a_group_failed_for_another_reason() -> None:
    lines = summary_lines(MEMBERS, unreachable={"n3"}, failed={"n3", "n4"})
    assert lines[1] == "serving group 'b': FAILED: unreachable n3"
    assert lines[2] == "serving group 'c': FAILED on n4"
