"""Operator runbooks (``ironserve/runbooks/data/*.md``, package data; docs/runbooks/README.md is
their index): parse them, and fill their placeholders with a site's hosts and paths from its
inventory and Plan.

A runbook is markdown with a fixed front matter (``id``, ``title``, ``kind`` failure|procedure,
``applies_to``, ``checks``: the health check ids that point here, ``lab_faults``, ``lab_profile``,
``lab_heal``: yes when the Fix starts with a hardware repair, done in the lab by
``ironserve lab heal``), the sections Symptoms, Diagnosis, Fix and Verification, and its commands in
```` ```console ```` blocks as ``$ command`` lines. A trailing ``# exits N`` on a command says the
exit code it has at that step (a diagnosis run while the fault is present); otherwise 0.
Placeholders (``{inventory}``, ``{node}``, ...) are filled by :func:`fill` (a command) and
:func:`fill_markdown` (a whole runbook); the lab test runs every command of every runbook
(tests/lab/test_runbooks.py), so a runbook cannot rot.

Values come from the inventory and the Plan, so a command quotes them for the shell
(``shlex.quote``): a placeholder outside quotes becomes one word; one inside single quotes is in a
command for the node's shell (``pyinfra ... exec -- '...'``), so it is quoted for that shell and
then escaped for the single quotes around it. A placeholder inside double quotes could not be
quoted that way: :func:`parse` refuses it.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import PurePath

from ironserve.config.schema import Cluster
from ironserve.errors import InputError, Problem, did_you_mean
from ironserve.plan.plan import plan_group

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:
    from importlib.abc import Traversable

SECTIONS = ("Symptoms", "Diagnosis", "Fix", "Verification")
KINDS = ("failure", "procedure")
VENDORS = ("all", "nvidia", "ascend", "vastai")
PLACEHOLDERS = (
    "inventory",
    "group",
    "node",
    "head",
    "container",
    "model",
    "served_name",
    "weights_path",
    "endpoint",
    "health_url",
    "metrics_url",
    "api_key_file",
    "npu_tls",
)
# The lab a Dynamo runbook runs on (``lab_profile``): `ironserve lab up --dynamo --nodes 3
# --profile labgpu` deployed with inventories/lab_dynamo.py, tests/lab/test_dynamo.py's own.
DYNAMO_LAB = "labgpu-dynamo"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_EXITS = re.compile(r"#\s*exits\s+(\d+)")
_FENCE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)


class RunbookError(ValueError):
    """A runbook file that does not follow the format (the project's bug: names the file)."""


@dataclass(frozen=True)
class Command:
    section: str  # the section it appears in
    text: str  # as written, placeholders unfilled, without the "$ "
    exit_code: int  # what it exits with at that step


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    kind: str
    applies_to: str
    checks: tuple[str, ...]
    lab_faults: tuple[str, ...]
    lab_profile: str
    lab_heal: bool
    body: str  # markdown after the front matter
    commands: tuple[Command, ...] = field(default=())


def runbook_dir() -> Traversable:
    """The runbooks shipped in the package (``ironserve/runbooks/data``), installed or not."""
    return files(__name__) / "data"


def _front_matter(path: Traversable, text: str) -> tuple[dict[str, str], str]:
    if not text.startswith("---\n"):
        raise RunbookError(f"{path}: must start with a '---' front matter block")
    head, sep, body = text[4:].partition("\n---\n")
    if not sep:
        raise RunbookError(f"{path}: front matter is not closed by '---'")
    meta = {}
    for line in head.splitlines():
        key, colon, value = line.partition(":")
        if not colon:
            raise RunbookError(f"{path}: front matter line {line!r} is not 'key: value'")
        meta[key.strip()] = value.strip()
    return meta, body


def _list(value: str) -> tuple[str, ...]:
    inner = value.strip().removeprefix("[").removesuffix("]")
    return tuple(item.strip() for item in inner.split(",") if item.strip())


def _commands(path: Traversable, body: str) -> tuple[Command, ...]:
    commands = []
    # Split by level-2 headings so each command knows its section.
    for chunk in re.split(r"^## ", body, flags=re.M)[1:]:
        section = chunk.splitlines()[0].strip()
        for block in _FENCE.findall(chunk):
            for line in block.splitlines():
                if not line.startswith("$ "):
                    continue  # output shown to the reader
                text = line[2:].strip()
                match = _EXITS.search(text)
                command = _EXITS.sub("", text).rstrip() if match else text
                if not command:
                    raise RunbookError(f"{path}: an empty command in {section}")
                commands.append(Command(section, command, int(match.group(1)) if match else 0))
    return tuple(commands)


def parse(path: Traversable) -> Runbook:
    text = path.read_text(encoding="utf-8")
    meta, body = _front_matter(path, text)
    missing = [k for k in ("id", "title", "kind", "applies_to") if not meta.get(k)]
    if missing:
        raise RunbookError(f"{path}: front matter lacks {', '.join(missing)}")
    if meta["id"] != PurePath(path.name).stem:
        raise RunbookError(f"{path}: id {meta['id']!r} differs from the file name")
    if meta["kind"] not in KINDS or meta["applies_to"] not in VENDORS:
        raise RunbookError(f"{path}: kind must be one of {KINDS}, applies_to one of {VENDORS}")
    headings = re.findall(r"^## (.+)$", body, flags=re.M)
    absent = [s for s in SECTIONS if s not in headings]
    if absent:
        raise RunbookError(f"{path}: sections missing: {', '.join(absent)}")
    commands = _commands(path, body)
    if not commands:
        raise RunbookError(f"{path}: no commands (```console blocks with '$ ' lines)")
    unknown = {
        name for c in commands for name in _PLACEHOLDER.findall(c.text) if name not in PLACEHOLDERS
    }
    if unknown:
        raise RunbookError(f"{path}: unknown placeholders {sorted(unknown)}")
    for c in commands:
        quoting = {quote for _, quote in _placeholders(c.text)}
        if '"' in quoting or ("'" in quoting and " exec -- " not in c.text):
            raise RunbookError(
                f"{path}: {c.text!r}: a placeholder may stand outside quotes, or inside the "
                "single-quoted command of `exec -- '...'`, never inside double quotes"
            )
    return Runbook(
        id=meta["id"],
        title=meta["title"],
        kind=meta["kind"],
        applies_to=meta["applies_to"],
        checks=_list(meta.get("checks", "")),
        lab_faults=_list(meta.get("lab_faults", "")),
        lab_profile=meta.get("lab_profile", "gpu2"),
        lab_heal=meta.get("lab_heal", "no") == "yes",
        body=body,
        commands=commands,
    )


def load_all(directory: Traversable | None = None) -> dict[str, Runbook]:
    """Every runbook by id (raises RunbookError on the first malformed file)."""
    folder = directory or runbook_dir()
    paths = sorted((p for p in folder.iterdir() if p.name.endswith(".md")), key=lambda p: p.name)
    return {book.id: book for book in (parse(p) for p in paths)}


def lookup(runbooks: dict[str, Runbook], runbook_id: str) -> Runbook:
    if runbook_id not in runbooks:
        raise InputError(
            [
                Problem(
                    "cli",
                    "ID",
                    f"no runbook {runbook_id!r}{did_you_mean(runbook_id, runbooks)}; "
                    f"known: {', '.join(sorted(runbooks))}",
                )
            ]
        )
    return runbooks[runbook_id]


def site_values(
    cluster: Cluster,
    inventory: str,
    node: str | None = None,
    group: str | None = None,
) -> dict[str, str]:
    """Placeholder values for one serving group of the site (the group of ``node`` if given,
    else ``group``, else the first); ``{node}`` defaults to the group's head."""
    chosen = cluster.groups[0]
    if node is not None:
        names = [n.name for g in cluster.groups for n in g.nodes]
        found = [g for g in cluster.groups if any(n.name == node for n in g.nodes)]
        if not found:
            raise InputError(
                [Problem(node, "--node", f"not in the inventory{did_you_mean(node, names)}")]
            )
        chosen = found[0]
    elif group is not None:
        groups = {g.name: g for g in cluster.groups}
        if group not in groups:
            raise InputError(
                [Problem("cluster", "--group", f"no group {group!r}{did_you_mean(group, groups)}")]
            )
        chosen = groups[group]
    plan = plan_group(chosen)
    head = plan.serving
    target = plan.node(node) if node is not None else head
    return {
        "inventory": inventory,
        "group": chosen.name,
        "node": target.node,
        "head": head.node,
        "container": target.container.name,
        "model": plan.context.model.id,
        "served_name": plan.context.served_name,
        "weights_path": plan.context.weights_path,
        "endpoint": plan.endpoint.url,
        "health_url": plan.endpoint.health_url,
        "metrics_url": plan.endpoint.metrics_url,
        "api_key_file": plan.api_key.control_file,
        "npu_tls": "1" if plan.context.npu_tls else "0",
    }


def _placeholders(command: str) -> list[tuple[re.Match[str], str | None]]:
    """Each placeholder of a shell command with the quote it stands in (None, ``'`` or ``"``),
    read the way a POSIX shell reads quotes and backslashes."""
    found: list[tuple[re.Match[str], str | None]] = []
    quote: str | None = None
    i = 0
    while i < len(command):
        match = _PLACEHOLDER.match(command, i)
        if match:
            found.append((match, quote))
            i = match.end()
            continue
        c = command[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if quote is None and c in "'\"":
            quote = c
        elif c == quote:
            quote = None
        i += 1
    return found


def _quoted(value: str, quote: str | None) -> str:
    word = shlex.quote(value)
    if quote is None:
        return word
    if quote == "'":  # inside '...': a word for the node's shell, escaped for the quotes around
        return word.replace("'", "'\"'\"'")
    raise ValueError(f"a placeholder inside double quotes cannot be quoted: {value!r}")


def fill(text: str, values: dict[str, str]) -> str:
    """The shell command ``text`` with every known placeholder replaced by its value, quoted
    (unknown braces, such as docker's ``{{.State.Status}}``, are left alone)."""
    out, at = [], 0
    for match, quote in _placeholders(text):
        name = match.group(1)
        if name in values:
            out += [text[at : match.start()], _quoted(values[name], quote)]
            at = match.end()
    return "".join(out) + text[at:]


def fill_markdown(body: str, values: dict[str, str]) -> str:
    """A runbook's markdown: its commands (``$`` lines of ```console blocks) filled by
    :func:`fill`, placeholders elsewhere (prose, output shown) replaced as they are."""

    def block(fence: re.Match[str]) -> str:
        lines = [
            f"$ {fill(line[2:], values)}" if line.startswith("$ ") else _plain(line, values)
            for line in fence.group(1).splitlines(keepends=True)
        ]
        return fence.group(0).replace(fence.group(1), "".join(lines), 1)

    parts, at = [], 0
    for fence in _FENCE.finditer(body):
        parts += [_plain(body[at : fence.start()], values), block(fence)]
        at = fence.end()
    return "".join(parts) + _plain(body[at:], values)


def _plain(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
