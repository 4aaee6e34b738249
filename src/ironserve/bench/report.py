"""Bench output: a rich table (one column per concurrency level, rows as in `vllm bench serve`),
JSON for scripts, and a PNG of latency against concurrency."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ironserve.bench.metrics import LevelSummary

_LATENCIES = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2E latency"))


def bench_table(levels: Sequence[LevelSummary], title: str) -> Table:
    table = Table(title=title, header_style="bold")
    table.add_column("metric")
    for level in levels:
        table.add_column(f"concurrency {level.concurrency}", justify="right")

    def row(label: str, values: Sequence[str]) -> None:
        table.add_row(label, *values)

    rate = levels[0].request_rate if levels else math.inf
    row("request rate (req/s)", ["inf" if math.isinf(rate) else f"{rate:.2f}"] * len(levels))
    row("successful requests", [str(lv.completed) for lv in levels])
    row("failed requests", [str(lv.failed) for lv in levels])
    row("benchmark duration (s)", [f"{lv.duration_s:.2f}" for lv in levels])
    row("total input tokens", [str(lv.total_input_tokens) for lv in levels])
    row("total generated tokens", [str(lv.total_output_tokens) for lv in levels])
    row("request throughput (req/s)", [f"{lv.request_throughput:.2f}" for lv in levels])
    row("output token throughput (tok/s)", [f"{lv.output_throughput:.2f}" for lv in levels])
    row("total token throughput (tok/s)", [f"{lv.total_token_throughput:.2f}" for lv in levels])
    for attr, label in _LATENCIES:
        table.add_section()
        for stat in ("mean", "median", "p90", "p99"):
            row(
                f"{stat.capitalize() if stat != 'p90' and stat != 'p99' else stat.upper()} "
                f"{label} (ms)",
                [f"{getattr(getattr(lv, attr), stat):.2f}" for lv in levels],
            )
    return table


def print_report(console: Console, levels: Sequence[LevelSummary], title: str) -> None:
    console.print(bench_table(levels, title))
    for level in levels:
        for error in level.errors:
            console.print(f"[red]concurrency {level.concurrency}[/red]: {error}", markup=True)


def plot_latency(levels: Sequence[LevelSummary], path: Path, title: str) -> None:
    """Median and p99 TTFT, TPOT and E2E latency against concurrency (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    xs = [lv.concurrency for lv in levels]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for axis, (attr, label) in zip(
        axes, (_LATENCIES[0], _LATENCIES[1], _LATENCIES[3]), strict=True
    ):
        for stat, style in (("median", "o-"), ("p99", "s--")):
            axis.plot(xs, [getattr(getattr(lv, attr), stat) for lv in levels], style, label=stat)
        axis.set_xlabel("concurrency")
        axis.set_ylabel(f"{label} (ms)")
        axis.set_xscale("log", base=2)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
