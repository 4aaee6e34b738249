"""The `ironserve` command: parse, call the library, print. Exit codes: 0 ok, 1 a plan is
infeasible (or a check failed), 2 bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from ironserve import __version__
from ironserve.bench.cli import bench as bench_cmd
from ironserve.catalog.engines import EngineKind
from ironserve.catalog.formats import WeightFormat
from ironserve.errors import InputError, Problem
from ironserve.health.cli import health as health_cmd
from ironserve.lab.cli import lab_app
from ironserve.monitoring.cli import monitoring_app
from ironserve.runbooks.cli import runbook as runbook_cmd
from ironserve.weights.cli import weights_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    help="From an inventory of GPU/NPU servers to a serving LLM cluster.",
)
out = Console()

Inventory = Annotated[
    Path, typer.Option("-i", "--inventory", help="pyinfra inventory file (group_data beside it)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON object on stdout, for scripts")]


def _fail_input(problems: list[Problem], as_json: bool) -> NoReturn:
    if as_json:
        doc = {"valid": False, "problems": [p.__dict__ for p in problems]}
        print(json.dumps(doc, indent=2))
    for problem in problems:
        print(problem, file=sys.stderr)  # one line per problem, never wrapped: scripts read it
    raise typer.Exit(2)


def _load(inventory: Path, as_json: bool) -> Any:
    from ironserve.config import load_cluster

    try:
        return load_cluster(str(inventory))
    except InputError as error:
        _fail_input(error.problems, as_json)


def _plans(cluster: Any, as_json: bool) -> Any:
    """Every group's Plan; a group its engine version cannot launch is bad input (exit 2)."""
    from ironserve.plan.plan import plan_cluster

    try:
        return plan_cluster(cluster)
    except InputError as error:
        _fail_input(error.problems, as_json)


@app.command()
def validate(inventory: Inventory, as_json: JsonFlag = False) -> None:
    """Check the inventory without connecting to any node: exit 0 if valid, 2 with one line per
    problem (host, field, what is wrong)."""
    cluster = _load(inventory, as_json)
    _plans(cluster, as_json)  # what the engines' builders refuse is bad input too
    nodes = sum(len(g.nodes) for g in cluster.groups)
    if as_json:
        print(json.dumps({"valid": True, "groups": len(cluster.groups), "nodes": nodes}))
    else:
        out.print(f"{inventory}: valid ({len(cluster.groups)} serving group(s), {nodes} node(s))")


@app.command()
def plan(
    inventory: Annotated[
        Path | None, typer.Option("-i", "--inventory", help="Plan this inventory's groups")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model id, e.g. deepseek-ai/DeepSeek-R1")
    ] = None,
    model_config: Annotated[
        Path | None, typer.Option(help="config.json of a model the catalog lacks")
    ] = None,
    accelerator: Annotated[str | None, typer.Option(help="Accelerator id, e.g. h100-80g")] = None,
    nodes: Annotated[int, typer.Option(min=1, help="Number of nodes")] = 1,
    devices_per_node: Annotated[int, typer.Option(min=1, help="Accelerators per node")] = 8,
    engine: Annotated[
        EngineKind | None,
        typer.Option(
            help="Serving engine (default: the accelerator vendor's: vllm on NVIDIA, mindie on "
            "Ascend, vllm_vacc on Vastai)"
        ),
    ] = None,
    engine_version: Annotated[str | None, typer.Option(help="Engine version")] = None,
    weight_format: Annotated[
        WeightFormat | None, typer.Option("--format", help="Checkpoint format (default: native)")
    ] = None,
    max_model_len: Annotated[int | None, typer.Option(min=1, help="Context length")] = None,
    tensor_parallel_size: Annotated[int | None, typer.Option(min=1, help="Force TP")] = None,
    pipeline_parallel_size: Annotated[int | None, typer.Option(min=1, help="Force PP")] = None,
    data_parallel_size: Annotated[int | None, typer.Option(min=1, help="Force DP")] = None,
    expert_parallel: Annotated[
        bool | None,
        typer.Option("--expert-parallel/--no-expert-parallel", help="MoE experts over ranks"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Will it fit and how to split it. With `-i`, plans the inventory; otherwise sizes
    `--model` on `--nodes` x `--devices-per-node` `--accelerator`. Exit 0 feasible, 1 infeasible
    (the plan and its reasons are still printed), 2 bad input."""
    from ironserve.catalog.models import UnknownModel
    from ironserve.engines.common import EngineBuildError
    from ironserve.plan.plan import plan_sizing
    from ironserve.plan.sizing import UnknownAccelerator
    from ironserve.plan.types import SizingRequest
    from ironserve.render import print_plans

    if inventory is not None:
        plans = _plans(_load(inventory, as_json), as_json)
    else:
        missing = [
            name for name, v in (("--model", model), ("--accelerator", accelerator)) if not v
        ]
        if missing:
            _fail_input(
                [Problem("cli", m, "required without -i/--inventory") for m in missing], as_json
            )
        assert model is not None and accelerator is not None
        if engine is None:
            from ironserve.catalog.accelerators import ACCELERATORS
            from ironserve.catalog.engines import default_engine

            # An unknown accelerator keeps vLLM here; sizing then refuses it (exit 2, suggestion).
            known = ACCELERATORS.get(accelerator)
            engine = default_engine(known.vendor) if known else EngineKind.VLLM
        request = SizingRequest(
            model_id=model,
            accelerator_id=accelerator,
            nodes=nodes,
            devices_per_node=devices_per_node,
            engine=engine,
            engine_version=engine_version,
            weight_format=weight_format,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            pipeline_parallel_size=pipeline_parallel_size,
            data_parallel_size=data_parallel_size,
            expert_parallel=expert_parallel,
        )
        try:
            plans = [plan_sizing(request, model_config)]
        except UnknownModel as error:
            _fail_input([Problem("cli", "--model", str(error))], as_json)
        except EngineBuildError as error:
            _fail_input([Problem("cli", "--engine-version", str(error))], as_json)
        except (OSError, ValueError) as error:
            _fail_input([Problem("cli", "--model-config", str(error))], as_json)
        except UnknownAccelerator as error:
            _fail_input([Problem("cli", "--accelerator", str(error))], as_json)
    feasible = all(p.feasible for p in plans)
    if as_json:
        if len(plans) == 1:
            print(json.dumps(plans[0].summary(), indent=2))
        else:
            doc = {"feasible": feasible, "groups": [p.summary() for p in plans]}
            print(json.dumps(doc, indent=2))
    else:
        print_plans(out, plans)
    raise typer.Exit(0 if feasible else 1)


@app.command()
def render(
    inventory: Inventory,
    node: Annotated[str, typer.Option("--node", help="Inventory host name")],
    as_json: JsonFlag = False,
) -> None:
    """Print what runs on one node: its container command, environment and files."""
    from ironserve.render import print_node

    cluster = _load(inventory, as_json)
    for group, group_plan in zip(cluster.groups, _plans(cluster, as_json), strict=True):
        if any(n.name == node for n in group.nodes):
            launch = group_plan.node(node)
            if as_json:
                gateway = group_plan.gateway
                doc = launch.model_dump()
                doc["gateway"] = gateway.model_dump() if gateway and gateway.node == node else None
                print(json.dumps(doc, indent=2))
            else:
                print_node(out, launch, group_plan.gateway)
            return
    names = [n.name for g in cluster.groups for n in g.nodes]
    from ironserve.errors import did_you_mean

    _fail_input(
        [Problem(node, "--node", f"not in the inventory{did_you_mean(node, names)}")], as_json
    )


catalog_app = typer.Typer(
    no_args_is_help=True, help="What ironserve knows: models, accelerators, engines."
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(lab_app, name="lab")
app.add_typer(weights_app, name="weights")
app.add_typer(monitoring_app, name="monitoring")
app.command("bench")(bench_cmd)
app.command("runbook")(runbook_cmd)
app.command("health")(health_cmd)


@catalog_app.command("models")
def catalog_models_cmd(as_json: JsonFlag = False) -> None:
    """Models with their architecture facts (from their config.json)."""
    from ironserve.catalog.models import catalog_models
    from ironserve.render import print_models

    models = catalog_models()
    if as_json:
        print(json.dumps([m.model_dump(mode="json") for m in models.values()], indent=2))
    else:
        print_models(out, list(models.values()))


@catalog_app.command("accelerators")
def catalog_accelerators_cmd(
    as_json: JsonFlag = False,
    lab: Annotated[bool, typer.Option("--lab", help="Also the lab's simulated ones")] = False,
) -> None:
    """Accelerators with their memory and the weight formats they run."""
    from ironserve.catalog.accelerators import ACCELERATORS
    from ironserve.render import print_accelerators

    shown = [a for a in ACCELERATORS.values() if lab or not a.lab]
    if as_json:
        print(json.dumps([a.model_dump(mode="json") for a in shown], indent=2))
    else:
        print_accelerators(out, shown)


@catalog_app.command(
    "flags", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
def catalog_flags_cmd(
    engine: Annotated[EngineKind, typer.Argument(help="Engine")],
    version: Annotated[str | None, typer.Option(help="Engine version")] = None,
    check: Annotated[list[str] | None, typer.Argument(help="Flags to check")] = None,
    component: Annotated[
        str,
        typer.Option(help="dynamo only: frontend, or a worker's backend (vllm, sglang, trtllm)"),
    ] = "frontend",
) -> None:
    """Check flags against the engine version's own parser (exit 1 if any is unknown)."""
    from ironserve.catalog import dynamo
    from ironserve.catalog.engines import ENGINES, FlagTable, check_flags, flag_table

    spec = ENGINES[engine]
    components = ["frontend", *(b.value for b in dynamo.DynamoBackend)]
    if engine == EngineKind.DYNAMO and component not in components:
        _fail_input([Problem("cli", "--component", f"one of {', '.join(components)}")], False)
    table: FlagTable | None
    try:
        if engine == EngineKind.DYNAMO:
            table = dynamo.table_of(version or spec.default_version, component)
        else:
            table = flag_table(spec, version or spec.default_version)
    except ValueError as error:
        _fail_input([Problem("cli", "--version", str(error))], False)
    if table is None:
        out.print(f"{engine.value} takes no command-line flags")
        return
    if not check:
        out.print("\n".join(sorted(table.flags)))
        return
    problems = check_flags(table, check)
    for line in problems:
        out.print(line, markup=False)
    if not problems:
        out.print(f"ok: accepted by {table.engine} {table.version}")
    raise typer.Exit(1 if problems else 0)


@catalog_app.command("fetch-config")
def catalog_fetch_config_cmd(
    model: Annotated[str, typer.Argument(help="Hub repo id, e.g. Qwen/Qwen3-8B")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write config.json")],
    revision: Annotated[str, typer.Option(help="Branch, tag or commit")] = "main",
    endpoint: Annotated[
        str | None, typer.Option(help="Hub or mirror URL (default: HF_ENDPOINT or huggingface.co)")
    ] = None,
    token_file: Annotated[Path | None, typer.Option(help="0600 file holding the hub token")] = None,
) -> None:
    """Fetch a model's config.json so that a model the catalog lacks can be planned
    (`plan --model-config`, or `model_config_file` in the inventory)."""
    from ironserve.catalog.hub import fetch_config
    from ironserve.catalog.models import spec_from_config_file

    try:
        written = fetch_config(
            model, out_path, revision=revision, endpoint=endpoint, token_file=token_file
        )
        spec = spec_from_config_file(model, written)
    except Exception as error:  # the hub client's own errors say what went wrong
        _fail_input([Problem("cli", "model", f"{type(error).__name__}: {error}")], False)
    out.print(
        f"{written}: {spec.architecture}, {spec.num_layers} layers, {spec.num_attention_heads} "
        f"heads, {spec.native_format.value}"
    )


def _version_callback(value: bool) -> None:
    if value:
        print(f"ironserve {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version"
        ),
    ] = False,
) -> None:
    pass


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
