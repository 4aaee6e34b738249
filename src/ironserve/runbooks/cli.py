"""`ironserve runbook`: print a runbook with the site's hosts and paths filled in."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ironserve.errors import InputError


def runbook(
    runbook_id: Annotated[str | None, typer.Argument(metavar="ID", help="Runbook id")] = None,
    inventory: Annotated[
        Path | None,
        typer.Option("-i", "--inventory", help="Fill the placeholders from this inventory"),
    ] = None,
    node: Annotated[str | None, typer.Option(help="The node concerned ({node})")] = None,
    group: Annotated[str | None, typer.Option(help="Serving group (default: the first)")] = None,
    list_ids: Annotated[bool, typer.Option("--list", help="List the runbooks")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Print runbook ID (ironserve/runbooks/data/ID.md) with the site's hosts, paths and
    endpoint filled in. An unknown id lists the known ones and exits 2."""
    from ironserve.runbooks import fill, fill_markdown, load_all, lookup, site_values

    books = load_all()
    if list_ids or runbook_id is None:
        rows = [{"id": b.id, "kind": b.kind, "title": b.title} for b in books.values()]
        if as_json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(f"{row['id']:<22} {row['kind']:<10} {row['title']}")
        raise typer.Exit(0 if list_ids else 2)
    try:
        book = lookup(books, runbook_id)
        values: dict[str, str] = {}
        if inventory is not None:
            from ironserve.config import load_cluster

            values = site_values(load_cluster(str(inventory)), str(inventory), node, group)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise typer.Exit(2) from None
    body = fill_markdown(book.body, values)
    if as_json:
        doc = {
            "id": book.id,
            "title": book.title,
            "kind": book.kind,
            "applies_to": book.applies_to,
            "checks": list(book.checks),
            "values": values,
            "commands": [
                {"section": c.section, "command": fill(c.text, values), "exit_code": c.exit_code}
                for c in book.commands
            ],
            "markdown": body,
        }
        print(json.dumps(doc, indent=2))
        return
    print(f"# {book.title}  [{book.id}, applies to {book.applies_to}]")
    if values:
        print(f"(filled from {inventory}: group {values['group']}, node {values['node']})")
    print(body.rstrip())
