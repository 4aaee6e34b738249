"""The runbooks: every file parses, every health check's runbook id exists, every lab fault has a
runbook, and `ironserve runbook` fills a site's hosts and paths (unknown id: the list, exit 2)."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ironserve.cli import app
from ironserve.lab.sim.faults import KINDS as LAB_FAULTS
from ironserve.runbooks import (
    DYNAMO_LAB,
    PLACEHOLDERS,
    RunbookError,
    fill,
    fill_markdown,
    load_all,
    parse,
    runbook_dir,
)
from tests.conftest import ROOT
from tests.lab.runbook_runner import LAB_TEST_FAULTS

HEALTH = ROOT / "src" / "ironserve" / "health"
BOOKS = ROOT / "src" / "ironserve" / "runbooks" / "data"
INDEX = ROOT / "docs" / "runbooks" / "README.md"
PROCEDURES = {
    "first-deploy",
    "add-node",
    "replace-node",
    "upgrade-driver",
    "change-model",
    "rollback",
    "drain-node",
    "nccl-oom",
}


def test_every_runbook_parses_and_has_its_sections() -> None:
    books = load_all()
    assert len(books) == len(list(BOOKS.glob("*.md")))  # every file of the package data
    assert {b.id for b in books.values() if b.kind == "procedure"} >= PROCEDURES
    for book in books.values():
        sections = {c.section for c in book.commands}
        assert {"Diagnosis", "Verification"} <= sections, book.id
        # Verification runs with the fault gone: it must succeed.
        assert all(c.exit_code == 0 for c in book.commands if c.section == "Verification")
        for fault in book.lab_faults:
            assert fault in LAB_FAULTS or fault in LAB_TEST_FAULTS, (book.id, fault)


def test_every_runbook_names_a_lab_profile() -> None:
    """``lab_profile`` is the lab the lab test runs it on: a profile `ironserve lab up` has, or
    the Dynamo lab (tests/lab/test_dynamo.py's)."""
    from ironserve.lab.hardware import PROFILES

    for book in load_all().values():
        assert book.lab_profile in PROFILES or book.lab_profile == DYNAMO_LAB, book.id


def test_every_runbook_runs_on_exactly_one_lab_test() -> None:
    """tests/lab/test_runbooks.py's labs or tests/lab/test_dynamo.py's Dynamo lab, never both,
    never neither."""
    from tests.lab import test_dynamo, test_runbooks

    general, dynamo = set(test_runbooks.ORDER), set(test_dynamo.RUNBOOKS)
    assert len(test_runbooks.ORDER) == len(general)
    assert not general & dynamo
    assert general | dynamo == set(load_all())
    assert dynamo == {
        "dynamo-decode-lost",
        "dynamo-prefill-lost",
        "dynamo-control-plane",
        "dynamo-kv-transfer",
    }


def test_the_index_lists_every_runbook() -> None:
    links = re.findall(r"\]\(([^)]+\.md)\)", INDEX.read_text())
    targets = {(INDEX.parent / link).resolve() for link in links}
    assert all(t.is_file() for t in targets), sorted(map(str, targets))
    assert {t.stem for t in targets if t.parent == BOOKS} == set(load_all())


def test_every_lab_fault_has_a_runbook() -> None:
    covered = {f for b in load_all().values() for f in b.lab_faults}
    assert set(LAB_FAULTS) | {"disk-full", "node-down", "engine-stopped"} <= covered


def _health_runbook_ids() -> set[str]:
    """String constants the health code gives as runbook ids (``runbook=...`` keywords,
    ``"runbook": ...`` dict entries, ``RUNBOOK...`` assignments)."""
    ids: set[str] = set()
    for path in HEALTH.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg in ("runbook", "runbook_id"):
                values.append(node.value)
            elif isinstance(node, ast.Dict):
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value in ("runbook", "runbook_id")
                ]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                named = any(isinstance(t, ast.Name) and "RUNBOOK" in t.id for t in targets)
                if isinstance(node.value, ast.Dict):  # RUNBOOKS = {id: meaning}: the keys
                    values += [k for k in node.value.keys if k is not None] if named else []
                elif named and node.value is not None:
                    values.append(node.value)
            for value in values:
                for const in ast.walk(value):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        ids.add(const.value)
    return ids


def test_every_runbook_the_health_checks_name_exists() -> None:
    named = {i for i in _health_runbook_ids() if i and "{" not in i}
    assert named, "the health checks name no runbook ids (runbook=... on each result)"
    missing = sorted(i for i in named if not (runbook_dir() / f"{i}.md").is_file())
    assert not missing, f"health checks name runbooks that do not exist: {missing}"


def test_malformed_runbooks_are_refused(tmp_path: Path) -> None:
    good = (runbook_dir() / "gpu-ecc.md").read_text()
    cases = {
        "no-front.md": good.split("---\n", 2)[2],
        "wrong-id.md": good,
        "no-fix.md": good.replace("## Fix", "## Repair"),
        "bad-ph.md": good.replace("{node}", "{nodename}"),
    }
    for name, text in cases.items():
        path = tmp_path / name
        text = text.replace("id: gpu-ecc", f"id: {path.stem}") if name != "wrong-id.md" else text
        path.write_text(text)
        with pytest.raises(RunbookError, match=name):
            parse(path)


def test_fill_from_a_site(tmp_path: Path) -> None:
    inventory = ROOT / "inventories" / "h100x8_2node_r1_vllm.py"
    result = CliRunner().invoke(
        app, ["runbook", "-i", str(inventory), "gpu-xid", "--node", "h100-b", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    values = doc["values"]
    assert set(values) == set(PLACEHOLDERS)
    assert values["node"] == "h100-b" and values["head"] == "h100-a"
    assert values["endpoint"].endswith(":8000/v1") and values["weights_path"].startswith("/data/")
    commands = [c["command"] for c in doc["commands"]]
    assert f"pyinfra -y --limit h100-b {inventory} exec -- nvidia-smi -L" in commands
    assert not any("{" in c.replace("{{", "") for c in commands)
    assert "nvidia.xid" in doc["checks"]
    assert "{node}" not in doc["markdown"] and "h100-b" in doc["markdown"]


def test_unknown_id_lists_the_runbooks_and_exits_2() -> None:
    result = CliRunner().invoke(app, ["runbook", "gpu-xd"])
    assert result.exit_code == 2
    assert "did you mean 'gpu-xid'" in result.stderr and "first-deploy" in result.stderr
    listing = CliRunner().invoke(app, ["runbook", "--list"])
    assert listing.exit_code == 0 and "nccl-oom" in listing.stdout
    bad_node = CliRunner().invoke(
        app,
        [
            "runbook",
            "-i",
            str(ROOT / "inventories" / "h200x8_r1_vllm.py"),
            "gpu-ecc",
            "--node",
            "x",
        ],
    )
    assert bad_node.exit_code == 2 and "x: --node: not in the inventory" in bad_node.stderr


def test_fill_leaves_docker_templates_alone() -> None:
    text = "docker inspect --format '{{.State.Status}}' {container} {unknown}"
    assert (
        fill(text, {"container": "c"}) == "docker inspect --format '{{.State.Status}}' c {unknown}"
    )


def test_remote_commands_keep_their_quoting() -> None:
    """`pyinfra ... exec -- ARGS` joins ARGS with spaces on the node: an argument holding spaces,
    or a pipe/`;` outside quotes (run by the local shell), breaks the command. Such commands must
    pass the whole remote command as one quoted argument."""
    bad = []
    for book in load_all().values():
        for command in book.commands:
            if " exec -- " not in command.text:
                continue
            remote = command.text.split(" exec -- ", 1)[1]
            lexer = shlex.shlex(remote, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            tokens = list(lexer)
            split = len(tokens) > 1 and any(" " in t or t in ("|", ";", "&&", "||") for t in tokens)
            if split:
                bad.append(f"{book.id}: {command.text}")
    assert not bad, "\n".join(bad)


# --- values are data: quoted for the shell -------------------------------------------------

HOSTILE = "/data/models/x; touch /tmp/ironserve-pwned"


def test_a_filled_value_is_one_word_of_the_command() -> None:
    filled = fill("pyinfra -y --limit {node} {inventory} exec -- ls -l {weights_path}", {
        "node": "n1", "inventory": "inventories/site.py", "weights_path": HOSTILE,
    })  # fmt: skip
    assert shlex.split(filled)[-1] == HOSTILE
    assert shlex.split(filled)[:4] == ["pyinfra", "-y", "--limit", "n1"]


def test_a_value_inside_a_remote_command_is_one_word_on_the_node() -> None:
    text = "pyinfra -y --limit {node} {inventory} exec -- 'docker logs --tail 50 {container} 2>&1'"
    name = "c'1; touch /tmp/ironserve-pwned"
    filled = fill(text, {"node": "n1", "inventory": "i.py", "container": name})
    remote = shlex.split(filled)[-1]  # what pyinfra runs on the node
    assert shlex.split(remote) == ["docker", "logs", "--tail", "50", name, "2>&1"]


def test_safe_values_fill_as_before() -> None:
    values = {"node": "h100-b", "container": "ironserve-default-head", "weights_path": "/d/m"}
    for book in load_all().values():
        for command in book.commands:
            plain = re.sub(r"\{([a-z_]+)\}", lambda m: values.get(m[1], m[0]), command.text)
            assert fill(command.text, values) == plain


def test_markdown_quotes_commands_only() -> None:
    body = (
        "Check `{weights_path}` first.\n\n"
        "```console\n$ ls -l {weights_path}\nls: {weights_path}\n```\n"
    )
    filled = fill_markdown(body, {"weights_path": "/a b"})
    assert filled == "Check `/a b` first.\n\n```console\n$ ls -l '/a b'\nls: /a b\n```\n"


def test_a_placeholder_in_double_quotes_is_refused(tmp_path: Path) -> None:
    book = tmp_path / "x.md"
    book.write_text(
        "---\nid: x\ntitle: X\nkind: failure\napplies_to: all\n---\n"
        '## Symptoms\ns\n## Diagnosis\n```console\n$ echo "{node}"\n```\n'
        "## Fix\nf\n## Verification\nv\n"
    )
    with pytest.raises(RunbookError, match="never inside double quotes"):
        parse(book)
