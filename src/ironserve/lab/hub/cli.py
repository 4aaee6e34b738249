"""`ironserve lab hub ...`: the lab model hub's counters, faults, bandwidth cap and repos.

Exit codes: 0 ok, 1 the hub refused or did not answer, 2 bad input or no lab/hub.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ironserve.lab.hub.control import HubControl

hub_app = typer.Typer(
    no_args_is_help=True,
    help="The lab model hub (Hugging Face and ModelScope APIs): stats, faults, bandwidth, repos.",
)
out = Console()
err = Console(stderr=True)
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """'8M', '512K', '2G', '1048576' (bytes; binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 1048576, 512K, 8M, 2G)")
    return int(match.group(1)) * UNITS[match.group(2).upper()]


def hub_url(directory: Path | None = None) -> str:
    """The lab hub's URL as this machine reaches it (from the lab state)."""
    from ironserve.lab import state as st
    from ironserve.lab.cluster import LabError

    state = st.load((directory or st.lab_dir()).resolve())
    if state is None:
        raise LabError("no lab is up; run `ironserve lab up`")
    service = state.services.get("hub")
    if service is None:
        raise LabError("this lab has no hub (it was brought up before the hub existed)")
    return service.host_url or service.url


@contextmanager
def _guard() -> Iterator[HubControl]:
    import httpx

    from ironserve.lab.cluster import LabError

    try:
        yield HubControl(hub_url())
    except (LabError, ValueError) as error:
        err.print(f"lab hub: {error}", markup=False, highlight=False)
        raise typer.Exit(2) from error
    except (httpx.HTTPError, RuntimeError) as error:
        err.print(f"lab hub: {error}", markup=False, highlight=False)
        raise typer.Exit(1) from error


@hub_app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Zero the counters afterwards")] = False,
) -> None:
    """Bytes served: in total, per client address, per repo."""
    with _guard() as hub:
        doc = hub.stats()
        if reset:
            hub.reset()
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    limit = doc.get("limit_bytes_per_s")
    out.print(
        f"hub: {doc['total_bytes']} bytes in {doc['requests']} requests; "
        f"cap {'none' if limit is None else f'{limit} B/s'}; faults fired {doc['faults_fired']}"
    )
    table = Table()
    table.add_column("client / repo")
    table.add_column("bytes", justify="right")
    for name, n in sorted(doc["clients"].items()) + sorted(doc["repos"].items()):
        table.add_row(name, str(n))
    out.print(table)


@hub_app.command()
def fault(
    kind: Annotated[str, typer.Argument(help="drop, corrupt or slow")] = "",
    path: Annotated[str, typer.Argument(help="Glob on the file path in the repo")] = "*",
    count: Annotated[int, typer.Option(min=1, help="How many responses it hits")] = 1,
    after_bytes: Annotated[
        str | None, typer.Option(help="drop/corrupt: file offset (default: the middle)")
    ] = None,
    delay_s: Annotated[float, typer.Option(min=0, help="slow: seconds before answering")] = 1.0,
    repo: Annotated[str | None, typer.Option(help="Only this repo id")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every armed fault")] = False,
) -> None:
    """Arm a fault for the next matching file responses (or --clear them all)."""
    with _guard() as hub:
        if clear:
            hub.clear_faults()
            out.print("hub: faults cleared")
            return
        offset = None if after_bytes is None else parse_size(after_bytes)
        armed = hub.fault(kind, path, count, offset, delay_s, repo)
        out.print(f"hub: armed {json.dumps(armed)}", markup=False)


@hub_app.command()
def limit(
    rate: Annotated[str, typer.Argument(help="Bytes per second (8M = 8 MiB/s) or 'off'")],
) -> None:
    """Cap all file bytes served together (the site's internet link)."""
    with _guard() as hub:
        value = None if rate.lower() in ("off", "none", "0") else parse_size(rate)
        hub.limit(value)
        out.print(f"hub: bandwidth cap {'off' if value is None else f'{value} B/s'}")


@hub_app.command()
def repos(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    add: Annotated[str | None, typer.Option(help="(Re)generate this repo id first")] = None,
    size: Annotated[str, typer.Option(help="--add: bytes of all shards (e.g. 4G)")] = "32M",
    shards: Annotated[int, typer.Option(min=1, help="--add: number of shards")] = 4,
    gated: Annotated[
        bool, typer.Option(help="--add: token required (the lab's hub-token)")
    ] = False,
) -> None:
    """The hub's repos (commit, size, files), after generating one with --add."""
    with _guard() as hub:
        if add is not None:
            token = None
            if gated:
                from ironserve.lab import state as st
                from ironserve.lab.hub.service import token_path

                token = token_path(st.lab_dir().resolve()).read_text().strip()
            hub.add_repo(add, parse_size(size), shards, gated, token)
        doc = hub.repos()
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    table = Table()
    for column in ("repo", "commit", "gated", "files", "bytes"):
        table.add_column(column)
    for repo_id, repo in doc.items():
        table.add_row(
            repo_id,
            repo["commit"][:12],
            "yes" if repo["gated"] else "no",
            str(len(repo["files"])),
            str(repo["total_bytes"]),
        )
    out.print(table)
