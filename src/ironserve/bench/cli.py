"""`ironserve bench`: parse, resolve the endpoint from the inventory, run, print."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ironserve.errors import InputError, Problem


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels or any(level < 1 for level in levels):
        raise InputError(
            [Problem("cli", "--concurrency", f"{text!r}: positive integers, e.g. 1,4,16")]
        )
    return levels


def bench(
    inventory: Annotated[
        Path,
        typer.Option("-i", "--inventory", help="pyinfra inventory file (group_data beside it)"),
    ],
    group: Annotated[
        str | None, typer.Option(help="Serving group (when there are several)")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="OpenAI base URL ending in /v1 (default: the Plan's head)")
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(help="0600 file holding the API key (default: serving_api_key_file)"),
    ] = None,
    concurrency: Annotated[
        str, typer.Option(help="Concurrency levels, comma-separated")
    ] = "1,4,16",
    num_prompts: Annotated[int, typer.Option(min=1, help="Requests per level")] = 64,
    input_len: Annotated[int, typer.Option(min=1, help="Prompt length (words)")] = 256,
    output_len: Annotated[int, typer.Option(min=1, help="Tokens to generate per request")] = 128,
    range_ratio: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Lengths vary within this ratio")
    ] = 0.0,
    request_rate: Annotated[
        float, typer.Option(help="Poisson arrival rate, requests/s (inf: all at once)")
    ] = math.inf,
    seed: Annotated[int, typer.Option(help="Seed of the dataset and the arrivals")] = 0,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds per request")] = 600.0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write latency vs concurrency to this PNG")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Load the endpoint like `vllm bench serve` (random prompts, a concurrency sweep, Poisson
    arrivals, streaming) and report TTFT, TPOT, ITL, E2E latency and throughput. Exit 0, 1 when
    any request failed, 2 bad input."""
    from ironserve.bench.dataset import random_requests
    from ironserve.bench.report import plot_latency, print_report
    from ironserve.bench.runner import Target, run_sweep
    from ironserve.bench.target import endpoint_of, read_key
    from ironserve.config import load_cluster

    try:
        levels = _levels(concurrency)
        if request_rate <= 0:
            raise InputError([Problem("cli", "--request-rate", "must be positive (or inf)")])
        target = endpoint_of(load_cluster(str(inventory)), group, with_key=api_key_file is None)
        if api_key_file is not None:
            target = Target(target.base_url, target.model, read_key("cli", api_key_file))
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise typer.Exit(2) from None
    if endpoint:
        target = Target(endpoint.rstrip("/"), target.model, target.api_key)
    requests = random_requests(num_prompts, input_len, output_len, range_ratio, seed)
    console = Console(stderr=as_json)
    console.print(
        f"bench: {target.base_url} model {target.model}, {num_prompts} requests per level, "
        f"input {input_len}, output {output_len}, concurrency {levels}",
        highlight=False,
    )
    summaries = run_sweep(target, requests, levels, request_rate, seed, timeout)
    title = f"Serving benchmark: {target.model} at {target.base_url}"
    if as_json:
        doc = {
            "endpoint": target.base_url,
            "model": target.model,
            "num_prompts": num_prompts,
            "input_len": input_len,
            "output_len": output_len,
            "range_ratio": range_ratio,
            "request_rate": None if math.isinf(request_rate) else request_rate,
            "levels": [s.as_json() for s in summaries],
        }
        print(json.dumps(doc, indent=2))
    else:
        print_report(console, summaries, title)
    if plot is not None:
        plot_latency(summaries, plot, title)
        console.print(f"plot: {plot}")
    raise typer.Exit(1 if any(s.failed for s in summaries) else 0)
