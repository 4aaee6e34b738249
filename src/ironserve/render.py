"""Human output: rich tables for plans, nodes and the catalog. Scripts use --json instead."""

from __future__ import annotations

import shlex

from rich.console import Console
from rich.table import Table

from ironserve.catalog.accelerators import Accelerator
from ironserve.catalog.format_support import WEIGHT_ONLY_ENGINES
from ironserve.catalog.models import ModelSpec
from ironserve.engines.base import NodeLaunch
from ironserve.plan.derived import Gateway
from ironserve.plan.plan import Plan
from ironserve.plan.sizing import gib, unit_name
from ironserve.plan.staging import Staging, Stream, duration, rate_text
from ironserve.plan.types import DynamoPool


def print_plans(console: Console, plans: list[Plan]) -> None:
    for plan in plans:
        _print_plan(console, plan)


def _print_plan(console: Console, plan: Plan) -> None:
    s, ctx = plan.sizing, plan.context
    p, m = s.parallelism, s.memory
    unit = unit_name(ctx.accelerator)
    verdict = "[green]feasible[/green]" if s.feasible else "[red]NOT feasible[/red]"
    console.print(
        f"[bold]{plan.group}[/bold]: {ctx.model.id} on {len(ctx.nodes)} x "
        f"{ctx.nodes[0].device_count} {ctx.accelerator.id} with {ctx.engine.kind.value} "
        f"{ctx.engine_version}: {verdict}"
    )
    budget = Table(title=f"Memory per {unit}", show_header=True, header_style="bold")
    budget.add_column("item")
    budget.add_column("value", justify="right")
    budget.add_row(f"{unit} memory", gib(m.unit_bytes))
    budget.add_row(f"usable ({m.utilization:.0%})", gib(m.usable_bytes))
    budget.add_row(f"weights ({s.weight_format.value})", gib(m.weights_bytes))
    budget.add_row("runtime reserve", gib(m.reserve_bytes))
    budget.add_row("KV cache", gib(m.kv_cache_bytes))
    budget.add_row("KV bytes per token", f"{m.kv_bytes_per_token:,}")
    budget.add_row("KV tokens", f"{m.kv_tokens:,}")
    layout = Table(title="Layout", show_header=True, header_style="bold")
    layout.add_column("setting")
    layout.add_column("value", justify="right")
    layout.add_row("tensor parallel", str(p.tensor))
    layout.add_row("pipeline parallel", str(p.pipeline))
    layout.add_row("data parallel", str(p.data))
    layout.add_row("expert parallel", str(p.expert))
    layout.add_row("max model len", str(s.max_model_len))
    layout.add_row("full-length sequences", str(s.full_length_sequences))
    if s.max_num_seqs is not None:
        layout.add_row("max concurrent requests", str(s.max_num_seqs))
    console.print(budget)
    console.print(layout)
    if plan.context.dynamo is not None:
        console.print(_dynamo_table(plan))
    for reason in s.reasons:
        mark = "[red]x[/red]" if reason in s.blockers else "-"
        console.print(f" {mark} {reason}", highlight=False)
    nodes = Table(title="Nodes", show_header=True, header_style="bold")
    for column in ("node", "address", "role", "rank", "serves API", "free disk needed"):
        nodes.add_column(column)
    for n in plan.nodes:
        need = gib(plan.disk_of(n.node).need_bytes)
        nodes.add_row(n.node, n.address, n.role, str(n.rank), "yes" if n.serves_api else "", need)
    console.print(nodes)
    console.print(_staging_table(plan.staging))
    console.print("[dim]ironserve render -i INVENTORY --node NAME prints a node's commands[/dim]")


def _dynamo_table(plan: Plan) -> Table:
    """A Dynamo group's pools: each worker's shape and what it holds (the layout and memory
    tables above are the serving pool's: decode, or the aggregated workers)."""
    spec = plan.context.dynamo
    assert spec is not None
    table = Table(
        title=f"Dynamo pools ({spec.backend.value} {spec.engine_version}, {spec.mode}, router "
        f"{spec.router_mode}, control plane {spec.control_plane}; "
        f"frontend on {spec.frontend_node})",
        show_header=True,
        header_style="bold",
    )
    columns = ("pool", "nodes", "workers/node", "nodes/worker", "TP", "DP", "EP", "context")
    for column in (*columns, "sequences"):
        table.add_column(column)
    table.add_column("feasible")
    for p in spec.pools:
        table.add_row(
            p.name,
            ", ".join(p.nodes),
            _per_node(p),
            str(p.nodes_per_worker),
            str(p.tensor),
            str(p.data),
            str(p.expert),
            str(p.sizing.max_model_len),
            str(p.sizing.full_length_sequences),
            "yes" if p.sizing.feasible else "[red]no[/red]",
        )
    return table


def _per_node(pool: DynamoPool) -> str:
    """Workers per node: one number, or each node's where they differ (node_dynamo_workers)."""
    counts = [str(pool.workers_on(n)) for n in pool.nodes]
    return counts[0] if len(set(counts)) == 1 else ", ".join(counts)


def _staging_table(st: Staging) -> Table:
    """The staging estimate: each step's bytes, the link that bounds it, and its time (the
    stream's: what it adds after the download)."""
    table = Table(
        title=f"Staging estimate ({st.nodes} node{'s' if st.nodes > 1 else ''}, nothing in place)",
        show_header=True,
        header_style="bold",
    )
    table.add_column("step")
    table.add_column("bytes", justify="right")
    table.add_column("bound by")
    table.add_column("rate", justify="right")
    table.add_column("time", justify="right")
    for step in st.steps:
        size = f"{step.sharing} x {gib(step.bytes)}" if step.sharing > 1 else gib(step.bytes)
        what, rate = step.what, rate_text(step.bytes_per_second)
        if isinstance(step, Stream):
            if step.hops == 0:
                table.add_row(step.what, "", "nothing to copy: one node", "", duration(0))
                continue
            # The copies' own rate: the row's link may be the download's, which they keep pace with.
            what = f"{what}, {step.hops} hop{'s' if step.hops > 1 else ''}, fan-out {step.sharing}"
            size, rate = gib(step.bytes), f"{rate_text(step.copy_bytes_per_second)} a copy"
        table.add_row(what, size, step.link, rate, duration(step.seconds))
    table.add_row(
        "[bold]total[/bold]",
        "",
        f"mostly {st.bound_by}",
        "",
        f"[bold]{duration(st.total_seconds)}[/bold]",
    )
    return table


def print_node(console: Console, launch: NodeLaunch, gateway: Gateway | None = None) -> None:
    """A node's commands, environment and files; ``gateway``: the Plan's, printed on its node."""
    console.print(
        f"[bold]{launch.node}[/bold] ({launch.role}, rank {launch.rank}, {launch.address})"
    )
    console.print("[bold]# commands[/bold]")
    for line in launch.shell_lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for container in launch.containers:
        if launch.companions and not container.env:
            continue  # a service of its own (Dynamo's etcd, NATS): nothing to show
        named = f" ({container.name})" if launch.companions else ""
        console.print(f"[bold]# environment{named}[/bold]")
        for key, value in sorted(container.env.items()):
            console.print(f"{key}={value}", markup=False, highlight=False)
    for f in launch.files:
        console.print(f"[bold]# file {f.path} (mode {f.mode})[/bold]")
        console.print(f.content, markup=False, highlight=False)
    if gateway is not None and gateway.node == launch.node:
        _print_gateway(console, gateway)


def print_models(console: Console, models: list[ModelSpec]) -> None:
    table = Table(show_header=True, header_style="bold")
    for column in ("model", "arch", "layers", "heads/kv", "experts", "format", "params", "on disk"):
        table.add_column(column)
    for m in models:
        experts = f"{m.num_experts}/{m.experts_per_token}" if m.is_moe else ""
        table.add_row(
            m.id,
            m.architecture + (" (MLA)" if m.uses_mla else ""),
            str(m.num_layers),
            f"{m.num_attention_heads}/{m.num_kv_heads}",
            experts,
            m.native_format.value,
            f"{m.parameters / 1e9:,.1f}B",
            gib(m.bytes_on_disk),
        )
    console.print(table)


def print_accelerators(console: Console, accelerators: list[Accelerator]) -> None:
    table = Table(show_header=True, header_style="bold")
    for column in ("id", "vendor", "product", "memory", "units", "formats", "note"):
        table.add_column(column)
    for a in accelerators:
        table.add_row(
            a.id,
            a.vendor,
            a.product,
            gib(a.memory_bytes),
            str(a.units_per_device),
            ", ".join(
                [f.value for f in sorted(a.formats)]
                + [
                    f"{f.value} (weight-only: "
                    + ", ".join(sorted(e.value for e in WEIGHT_ONLY_ENGINES.get(f, ())))
                    + ")"
                    for f in sorted(a.weight_only_formats)
                ]
            ),
            a.note,
        )
    console.print(table)


def _print_gateway(console: Console, gateway: Gateway) -> None:
    from ironserve.roles.gateway.defaults import GatewayData
    from ironserve.serving.gateway import container

    keyless = ", ".join(gateway.public_paths) or "none"
    console.print(
        f"[bold]# gateway on port {gateway.port}: the API key on every path (without it: "
        f"{keyless}), the engine behind it at {gateway.upstream}[/bold]"
    )
    run = container(gateway, GatewayData().gateway_image).docker_run_argv()
    console.print(shlex.join(run), markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"[bold]# file {gateway.config_file} (mode 0600)[/bold]: nginx's configuration with the "
        "group's API key; roles/gateway writes it (serving/gateway.py renders it)",
        highlight=False,
    )
