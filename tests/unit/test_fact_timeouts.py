"""Every fact a role or a packaged deploy reads on a node has a timeout (issue 15): a hung
tool (``nvidia-smi`` on a wedged GPU, ``ray status`` in a half-formed cluster) fails its host,
it does not hang the run."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "ironserve"


def _fact_calls_without_timeout(folder: Path) -> list[str]:
    missing = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get_fact"
                and not any(k.arg == "_timeout" for k in node.keywords)
            ):
                missing.append(f"{path.relative_to(folder)}:{node.lineno}")
    return missing


def test_every_role_and_deploy_fact_has_a_timeout() -> None:
    assert _fact_calls_without_timeout(SRC / "roles") == []
    assert _fact_calls_without_timeout(SRC / "deploys") == []


def test_the_check_finds_a_fact_without_one(tmp_path: Path) -> None:
    (tmp_path / "role.py").write_text(
        "host.get_fact(Which, command='x', _timeout=5)\nhost.get_fact(Which, command='y')\n"
    )
    assert _fact_calls_without_timeout(tmp_path) == ["role.py:2"]
