"""Will it fit, and how to split it: memory budget, parallelism and capacity. Pure, no I/O.

Every decision appends a sentence to ``reasons``; a sentence that makes the plan infeasible is
also appended to ``blockers``. The numbers follow what the engines do at load time: weights are
split over TP x PP ranks, each rank keeps ``memory_utilization`` of its device, a runtime reserve
goes to activations and communication buffers, and the rest is KV cache.

Layout search. Unless TP or PP is forced, vLLM (and SGLang on one node) get the TP x PP x DP split
that serves the most replicas: ``layout_candidates`` lists every split the engine can launch,
smallest instance (TP x PP) first and, among equal instances, the smaller PP first (TP inside a
node before PP across nodes); ``_size_layout`` sizes one split (memory, context, capacity); the
first split without blockers wins. A forced DP keeps the search, under that DP. MindIE and
vllm_vacc keep their documented layouts; multi-node SGLang runs TP over every device. When no
split serves the model, the default layout (TP = units per node, PP = nodes; TP over every
device for SGLang) is sized instead, so that its blockers name what is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from ironserve.catalog.accelerators import ACCELERATORS, Accelerator
from ironserve.catalog.engines import ENGINES, Engine, EngineKind, MultiNodeLaunch
from ironserve.catalog.format_support import (
    refusal,
    runnable_formats,
    weight_only,
    weight_only_note,
)
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import ModelSpec, get_model
from ironserve.errors import did_you_mean
from ironserve.plan.types import Alternative, MemoryBudget, Parallelism, Sizing, SizingRequest

GIB = 1024**3
# Runtime reserve per unit: the accelerator's fixed part (catalog: CUDA/CANN context,
# communication buffers, CUDA graphs) plus this share of its memory (the activation peak of a
# prefill batch). vLLM measures it with a profiling run; these are its usual sizes.
RESERVE_FRACTION = 0.04
# Below this context length a deployment is not worth calling feasible.
MIN_USEFUL_MODEL_LEN = 4096
# The layout search prefers the smallest instance that holds this much context (or the model's
# whole context when shorter, or the asked max_model_len): a 70B model served with a 5k context
# to gain a replica is not what an operator wants.
TARGET_MODEL_LEN = 32768
# vllm_vacc's limits (Vastai's DeepSeek-R1 guide): TP32; PP2 only for long inputs.
VACC_PP1_MAX_LEN = 65536
VACC_PP2_MAX_LEN = 131072
# If not even this many bits per parameter fit, no serving engine will run the model here.
EXTREME_QUANT_BITS = 1.58
ALTERNATIVE_SEARCH_NODES = 16
# "Starting from 0.18.0, vLLM no longer depends on Ray by default" (vLLM RFC #33445): its images
# stop carrying Ray, so a Ray launch (engine_multi_node: ray) needs an image that adds it.
VLLM_WITHOUT_RAY = Version("0.18.0")
# How many rejected smaller layouts the layout sentence names.
LAYOUT_REJECTIONS_SHOWN = 3


class UnknownAccelerator(KeyError):
    def __init__(self, accel_id: str) -> None:
        super().__init__(
            f"unknown accelerator {accel_id!r}{did_you_mean(accel_id, set(ACCELERATORS))}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


def _at_least(version: str, floor: Version) -> bool:
    try:
        return Version(version) >= floor
    except InvalidVersion:
        return False  # not comparable: validation reports the version itself


def gib(n: float) -> str:
    return f"{n / GIB:,.1f} GiB"


def unit_name(accel: Accelerator) -> str:
    return {"nvidia": "GPU", "ascend": "NPU", "vastai": "die"}[accel.vendor]


class _Log:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.blockers: list[str] = []
        self.layout = "as asked"
        # Why a searched layout is rejected, completing "<layout> ...": the first blocker's.
        self.why: str | None = None
        self.weights_blocked = False

    def note(self, text: str) -> None:
        self.reasons.append(text)

    def block(self, text: str, why: str | None = None) -> None:
        self.reasons.append(text)
        self.blockers.append(text)
        if self.why is None:
            self.why = why or f"is blocked: {text}"

    def extend(self, other: _Log) -> None:
        self.reasons.extend(other.reasons)
        self.blockers.extend(other.blockers)


def _choose_format(
    model: ModelSpec, accel: Accelerator, engine: EngineKind, wanted: WeightFormat | None, log: _Log
) -> WeightFormat:
    if wanted is not None:
        why_not = refusal(wanted, accel, engine)
        if why_not is not None:
            log.block(why_not)
        elif wanted != model.native_format:
            log.note(
                f"weights: {wanted.value} checkpoint asked for (the published one is "
                f"{model.native_format.value}); its size is estimated from the parameter count"
            )
        return wanted
    if model.native_format in runnable_formats(accel, engine):
        return model.native_format
    fallback = fallback_formats(model.native_format, accel, engine)
    if not fallback:
        # No conversion of this checkpoint is what anyone serves (an NVFP4 export is made from
        # its base model's weights): name the base checkpoint instead.
        why_not = refusal(model.native_format, accel, engine) or ""
        base = f"; serve {model.base_model} instead" if model.base_model else ""
        log.block(f"the published {model.native_format.value} checkpoint: {why_not}{base}")
        return model.native_format
    chosen = fallback[0]
    why = f" ({accel.note})" if accel.note else ""
    log.note(
        f"weights: {accel.id} does not run the published {model.native_format.value} checkpoint"
        f"{why}; planning a {chosen.value} checkpoint of the same model instead"
    )
    return chosen


def fallback_formats(
    native: WeightFormat, accel: Accelerator, engine: EngineKind
) -> list[WeightFormat]:
    # FP8 -> BF16 is the lossless upcast NVIDIA users run; Ascend's published R1 path is W8A8.
    # An NVFP4 checkpoint is an export of its base model, which is served instead: none here.
    fp8_order = [WeightFormat.W8A8, WeightFormat.BF16]
    if accel.vendor != "ascend":
        fp8_order.reverse()
    order = {
        WeightFormat.FP8: fp8_order,
        WeightFormat.MXFP4: [WeightFormat.BF16],
        WeightFormat.INT4: [WeightFormat.BF16],
        WeightFormat.NVFP4: [],
    }.get(native, [WeightFormat.BF16, WeightFormat.FP16])
    runnable = runnable_formats(accel, engine)
    return [f for f in order if f in runnable]


def _before(version: str, floor: str) -> bool:
    try:
        return Version(version) < Version(floor)
    except InvalidVersion:
        return False  # not comparable: validation reports the version itself


# How a multi-node launch's note starts (a Dynamo worker over nodes says its own: plan/dynamo.py).
MULTI_NODE_NOTE = "multi-node: "


def _check_multi_node_launch(engine: Engine, req: SizingRequest, version: str, log: _Log) -> None:
    """How a multi-node vLLM group's ranks meet: natively (0.12+) or through a Ray cluster;
    TensorRT-LLM's: one MPI world."""
    if req.nodes > 1 and engine.multi_node == "mpi":
        log.note(
            f"multi-node: {engine.kind.value} {version} runs one MPI world: mpirun in the head's "
            "container reaches each worker's container over SSH (engines/trtllm.py)"
        )
    since = engine.native_multi_node_since
    if req.nodes == 1 or since is None:
        return
    name = engine.kind.value
    if engine.launches_with_ray(version, req.multi_node):
        asked = req.multi_node == MultiNodeLaunch.RAY
        log.note(
            f"{MULTI_NODE_NOTE}{name} {version} launches through a Ray cluster"
            + (" (engine_multi_node: ray)" if asked else f" (native launch from {since})")
        )
        if _at_least(version, VLLM_WITHOUT_RAY):
            log.note(
                "vLLM 0.18+ images do not bundle Ray: engine_multi_node: ray needs an image "
                "that carries it"
            )
    elif req.multi_node == MultiNodeLaunch.NATIVE and _before(version, since):
        log.block(
            f"vLLM {version} has no native multi-node launch (--nnodes, from {since}): use "
            "engine_multi_node: ray"
        )
    else:
        log.note(
            f"{MULTI_NODE_NOTE}{name} {version} launches natively (--nnodes, --node-rank, "
            "--master-addr; --headless on the other nodes)"
        )


def _note_nvlink_domain(accel: Accelerator, req: SizingRequest, log: _Log) -> None:
    """Whether a multi-node group's ranks talk over NVLink (inside one rack-scale NVLink domain,
    GB200 NVL72) or over the network between nodes."""
    domain = accel.nvlink_domain
    if domain is None or req.nodes == 1:
        return
    gpus = req.nodes * req.devices_per_node
    if gpus <= domain:
        log.note(
            f"NVLink domain: the {gpus} {accel.id} GPUs fit in one {domain}-GPU NVLink domain, so "
            "ranks on different nodes (trays) talk over NVLink when the nodes share a rack"
        )
    else:
        log.note(
            f"NVLink domain: {gpus} {accel.id} GPUs span more than one {domain}-GPU NVLink "
            "domain; ranks in different racks talk over the network"
        )


def _expert_parallel_on(model: ModelSpec, engine: Engine, req: SizingRequest) -> bool:
    return bool(req.expert_parallel) and model.is_moe and engine.supports_expert_parallel


def _check_expert_parallel(model: ModelSpec, engine: Engine, req: SizingRequest, log: _Log) -> bool:
    """Whether experts are spread over ranks (EP = TP x DP); a request that cannot be is blocked."""
    if not req.expert_parallel or engine.fixed_tensor_parallel is not None:
        return False
    if not model.is_moe:
        log.block(f"expert parallelism asked, but {model.id} is not a mixture-of-experts model")
    elif not engine.supports_expert_parallel:
        log.block(f"{engine.kind.value} does not support expert parallelism")
    return _expert_parallel_on(model, engine, req)


def _choose_parallelism(
    model: ModelSpec,
    engine: Engine,
    req: SizingRequest,
    units_per_node: int,
    expert_parallel: bool,
    log: _Log,
) -> Parallelism:
    """The documented layout of the engine, or the one the request forces (not searched)."""
    total = units_per_node * req.nodes
    unit = "units"
    forced = (req.tensor_parallel_size, req.pipeline_parallel_size, req.data_parallel_size)
    if engine.fixed_tensor_parallel is not None:
        tp = req.tensor_parallel_size or engine.fixed_tensor_parallel
        if tp != engine.fixed_tensor_parallel:
            log.block(
                f"{engine.kind.value} runs TP{engine.fixed_tensor_parallel} only (TP {tp} asked)"
            )
        long_input = (req.max_model_len or 0) > VACC_PP1_MAX_LEN
        pp = req.pipeline_parallel_size or (2 if long_input else 1)
        if pp not in (1, 2):
            log.block(f"{engine.kind.value} runs PP1 or PP2 only (PP {pp} asked)")
        elif pp == 2 and not long_input:
            log.block(
                f"{engine.kind.value}: PP2 is only for inputs over 56k tokens (max_model_len above "
                f"{VACC_PP1_MAX_LEN}); use PP1"
            )
        if req.nodes != 1:
            log.block(f"{engine.kind.value} serves from one server; {req.nodes} nodes asked")
        if total != tp:
            log.block(
                f"{engine.kind.value} needs exactly {tp} dies (8 VA16 cards x 4 dies); this node "
                f"has {total}"
            )
        if pp == 2:
            log.layout = (
                "PP2 stages share the 32 dies and split the KV cache (vendor long-input mode)"
            )
        else:
            log.layout = f"TP{tp} over every die, as {engine.kind.value} runs"
        return Parallelism(tensor=tp, pipeline=pp, data=1, expert=1)

    dp = req.data_parallel_size or 1
    if dp > 1 and not engine.data_parallel:
        log.block(
            f"{engine.kind.value} serves one model instance per launch: DP {dp} is not one "
            "(run another group for another replica)"
        )
    if engine.tp_across_nodes:
        default_tp, default_pp = total // dp, 1
        layout = "TP over every accelerator, as this engine runs multi-node"
    else:
        default_tp, default_pp = units_per_node, req.nodes
        layout = "TP = accelerators per node, PP = nodes"
    tp = req.tensor_parallel_size or (
        total // (dp * req.pipeline_parallel_size) if req.pipeline_parallel_size else default_tp
    )
    pp = req.pipeline_parallel_size or (
        total // (dp * tp) if req.tensor_parallel_size else default_pp
    )
    tp, pp = max(tp, 1), max(pp, 1)
    if tp * pp * dp != total:
        log.block(
            f"TP {tp} x PP {pp} x DP {dp} = {tp * pp * dp} ranks, but the group has {total} "
            f"accelerator {unit}: every accelerator must get exactly one rank"
        )
    elif not any(forced):
        log.layout = layout
    ep = tp * dp if expert_parallel else 1
    return Parallelism(tensor=tp, pipeline=pp, data=dp, expert=ep)


def _rule_breaks(model: ModelSpec, par: Parallelism) -> list[tuple[str, str]]:
    """The model's rules a split breaks, each as (the blocker, why a searched split is skipped:
    it completes a sentence that starts with the split's name)."""
    tp = par.tensor
    breaks: list[tuple[str, str]] = []
    heads = model.num_attention_heads
    if heads % tp:
        breaks.append(
            (
                f"attention heads ({heads}) are not divisible by TP {tp} (rule: heads % TP == 0)",
                f"would not divide the {heads} attention heads",
            )
        )
    kv = model.num_kv_heads
    if not model.uses_mla and ((tp <= kv and kv % tp) or (tp > kv and tp % kv)):
        breaks.append(
            (
                f"KV heads ({kv}) and TP {tp} do not divide (rule: KV heads % TP == 0, or TP % KV "
                "heads == 0 when KV heads are replicated)",
                f"would not divide the {kv} KV heads"
                if tp <= kv
                else f"would not replicate the {kv} KV heads evenly",
            )
        )
    if par.expert > 1 and model.num_experts % par.expert:
        breaks.append(
            (
                f"experts ({model.num_experts}) are not divisible by EP {par.expert}",
                f"x DP {par.data} would make EP {par.expert}, which does not divide the "
                f"{model.num_experts} experts",
            )
        )
    if par.pipeline > model.num_layers:
        breaks.append(
            (
                f"PP {par.pipeline} exceeds the model's {model.num_layers} layers",
                f"would exceed the model's {model.num_layers} layers",
            )
        )
    return breaks


def _check_divisibility(
    model: ModelSpec,
    engine: Engine,
    par: Parallelism,
    req: SizingRequest,
    units_per_node: int,
    log: _Log,
) -> None:
    for blocker, why in _rule_breaks(model, par):
        log.block(blocker, why)
    if engine.power_of_two_devices_per_node:
        if units_per_node & (units_per_node - 1):
            log.block(
                f"{engine.kind.value} needs a power-of-two number of devices per node "
                f"(1, 2, 4 or 8); this node has {units_per_node}"
            )
        if req.nodes > 1 and req.nodes % 2:
            log.block(
                f"{engine.kind.value} runs multi-node on an even number of nodes, not {req.nodes}"
            )


@dataclass(frozen=True)
class LayoutCandidate:
    """One TP x PP x DP split the engine can launch. ``rule``: the model rule it breaks, as the
    end of a sentence that starts with the split's name ("would not divide the 28 attention
    heads"); None when it keeps them all."""

    parallelism: Parallelism
    rule: str | None = None

    @property
    def instance(self) -> int:
        """Ranks of one model instance (TP x PP); DP replicates it."""
        return self.parallelism.tensor * self.parallelism.pipeline


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def searches_layout(engine: Engine, req: SizingRequest) -> bool:
    """Whether the planner searches the split: not when TP or PP is forced, nor for engines with
    a fixed documented layout (MindIE: TP over every NPU; vllm_vacc: TP32), nor for multi-node
    SGLang (TP over every device). A forced DP is searched under (only splits with that DP)."""
    if req.tensor_parallel_size is not None or req.pipeline_parallel_size is not None:
        return False
    if engine.fixed_tensor_parallel is not None or engine.kind == EngineKind.MINDIE:
        return False
    return not engine.tp_across_nodes or req.nodes == 1


def layout_candidates(
    model: ModelSpec, engine: Engine, req: SizingRequest, units_per_node: int
) -> list[LayoutCandidate]:
    """Every TP x PP x DP split of ``req.nodes`` x ``units_per_node`` units that ``engine`` can
    launch, in the order the search tries them: smallest instance (TP x PP) first, so the most
    DP replicas; among equal instances the smaller PP first (TP inside a node before PP across
    nodes). Splits that break a model rule are listed with the rule, to be named, not sized.

    Ranks are laid out as vLLM does, TP innermost, then PP, then DP, each node taking
    ``units_per_node`` consecutive ranks; so an instance either fits inside a node (its size
    divides the node) or spans whole nodes (the node divides it). TP stays inside a node unless
    the engine runs TP across nodes (SGLang: then PP is 1). A multi-node group launched with Ray
    cannot place DP replicas across nodes, and an engine without replicas (TensorRT-LLM's one
    server per launch) has none: DP is 1 there. With expert parallelism EP = TP x DP.
    """
    per_node, nodes = units_per_node, req.nodes
    total = per_node * nodes
    version = req.engine_version or engine.default_version
    dp_across_nodes = nodes == 1 or not engine.launches_with_ray(version, req.multi_node)
    expert = _expert_parallel_on(model, engine, req)
    found: list[LayoutCandidate] = []
    for instance in _divisors(total):
        if per_node % instance and instance % per_node:
            continue  # it would straddle a node boundary
        dp = total // instance
        if req.data_parallel_size is not None and dp != req.data_parallel_size:
            continue
        if dp > 1 and not (dp_across_nodes and engine.data_parallel):
            continue
        for pp in _divisors(instance):
            tp = instance // pp
            if engine.tp_across_nodes:
                if pp > 1:
                    continue
            elif per_node % tp:
                continue  # TP inside a node; PP crosses nodes
            par = Parallelism(tensor=tp, pipeline=pp, data=dp, expert=tp * dp if expert else 1)
            breaks = _rule_breaks(model, par)
            found.append(LayoutCandidate(par, breaks[0][1] if breaks else None))
    return found


def _instance_name(par: Parallelism) -> str:
    return f"TP {par.tensor}" + (f" x PP {par.pipeline}" if par.pipeline > 1 else "")


def _kv_bytes_per_token_per_unit(model: ModelSpec, par: Parallelism, kv_dtype: int) -> int:
    layers = math.ceil(model.num_layers / par.pipeline)
    if model.uses_mla:
        # The compressed latent is not split by heads: every TP rank keeps all of it.
        return (model.kv_lora_rank + model.qk_rope_head_dim) * layers * kv_dtype
    heads_per_rank = max(1, math.ceil(model.num_kv_heads / par.tensor))
    return 2 * heads_per_rank * model.head_dim * layers * kv_dtype


def _sequence_bytes(model: ModelSpec, per_token_unit: int, tokens: int, kv_dtype: int) -> int:
    """A sequence's KV bytes on one unit, with sliding-window layers capped at their window."""
    whole = model.kv_bytes_per_token(kv_dtype)
    return model.kv_bytes_for_sequence(tokens, kv_dtype) * per_token_unit // whole


def _describe_kv(model: ModelSpec, per_token_unit: int, unit: str) -> str:
    if model.uses_mla:
        what = f"MLA latent of {model.kv_lora_rank + model.qk_rope_head_dim} values per layer"
    else:
        what = f"K and V of {model.num_kv_heads} KV heads x {model.head_dim} per layer"
    return f"KV cache: {what}, {per_token_unit:,} bytes per token on each {unit}"


def size(req: SizingRequest, *, with_alternatives: bool = True) -> Sizing:
    """Size one serving group. Raises UnknownModel / UnknownAccelerator for bad ids."""
    model = get_model(req.model_id)
    return size_model(model, req, with_alternatives=with_alternatives)


@dataclass(frozen=True)
class _Fit:
    """One split sized: what ``Sizing`` reports of it, and its own reasons and blockers."""

    parallelism: Parallelism
    memory: MemoryBudget
    max_model_len: int
    full_length_sequences: int
    max_num_seqs: int | None
    log: _Log

    @property
    def feasible(self) -> bool:
        return not self.log.blockers


def size_model(model: ModelSpec, req: SizingRequest, *, with_alternatives: bool = True) -> Sizing:
    if req.accelerator_id not in ACCELERATORS:
        raise UnknownAccelerator(req.accelerator_id)
    accel = ACCELERATORS[req.accelerator_id]
    engine = ENGINES[req.engine]
    log = _Log()
    if accel.vendor not in engine.vendors:
        log.block(f"{engine.kind.value} does not run on {accel.vendor} accelerators ({accel.id})")
    version = req.engine_version or engine.default_version
    _check_multi_node_launch(engine, req, version, log)
    fmt = _choose_format(model, accel, engine.kind, req.weight_format, log)
    if weight_only(fmt, accel, engine.kind):
        log.note(weight_only_note(fmt, accel, engine.kind))
    weights = model.weights_bytes(fmt)
    units_per_node = req.devices_per_node * accel.units_per_device
    log.note(
        f"weights: {model.id} in {fmt.value} is {gib(weights)}"
        + (" (the published checkpoint)" if fmt == model.native_format else " (estimated)")
    )
    expert_parallel = _check_expert_parallel(model, engine, req, log)
    _note_nvlink_domain(accel, req, log)
    fit = None
    if searches_layout(engine, req):
        fit = _search_layout(model, engine, req, accel, fmt, units_per_node, log)
    if fit is None:
        par = _choose_parallelism(model, engine, req, units_per_node, expert_parallel, log)
        fit = _size_layout(model, engine, req, accel, fmt, par, units_per_node, log.layout)
        log.extend(fit.log)

    feasible = not log.blockers
    alternatives: list[Alternative] = []
    if not feasible and with_alternatives:
        alternatives = _alternatives(model, req, accel)
        if alternatives:
            log.note("nearest feasible: " + "; or ".join(a.summary for a in alternatives))
        elif fmt in runnable_formats(accel, engine.kind):  # else the blocker says what to serve
            log.note(f"no feasible layout with up to {req.nodes + ALTERNATIVE_SEARCH_NODES} nodes")
    return Sizing(
        request=req,
        feasible=feasible,
        reasons=log.reasons,
        blockers=log.blockers,
        weight_format=fmt,
        weights_bytes=weights,
        parallelism=fit.parallelism,
        memory=fit.memory,
        max_model_len=fit.max_model_len,
        max_num_seqs=fit.max_num_seqs,
        full_length_sequences=fit.full_length_sequences,
        alternatives=alternatives,
    )


def _size_layout(
    model: ModelSpec,
    engine: Engine,
    req: SizingRequest,
    accel: Accelerator,
    fmt: WeightFormat,
    par: Parallelism,
    units_per_node: int,
    layout: str,
) -> _Fit:
    """Size one split: its rules, the memory of one unit, the context and the capacity, with
    reasons and blockers in a log of its own (the caller keeps it only for the split it takes)."""
    log = _Log()
    unit = unit_name(accel)
    weights = model.weights_bytes(fmt)
    total_units = units_per_node * req.nodes
    _check_divisibility(model, engine, par, req, units_per_node, log)
    log.note(
        f"parallelism: TP {par.tensor} x PP {par.pipeline} x DP {par.data}"
        + (f", EP {par.expert}" if par.expert > 1 else "")
        + f" over {req.nodes} node(s) x {units_per_node} {unit}s ({layout})"
    )

    # Memory budget of one unit.
    utilization = req.memory_utilization or engine.memory_utilization
    usable = int(accel.unit_memory_bytes * utilization)
    weight_split = par.tensor * (1 if engine.fixed_tensor_parallel is not None else par.pipeline)
    weights_unit = _weights_per_unit(model, weights, par, weight_split)
    split = f"{gib(weights)} over {weight_split} {unit}s"
    if par.expert > par.tensor:
        experts = model.expert_bytes(weights)
        split = (
            f"{gib(experts)} of routed experts over EP {par.expert}, "
            f"{gib(weights - experts)} over TP {par.tensor}"
        )
        log.note(
            f"expert parallelism: the routed experts ({gib(experts)}) split over EP "
            f"{par.expert}, the rest ({gib(weights - experts)}) over TP {par.tensor} and held by "
            f"each of the DP {par.data} ranks"
        )
    reserve = accel.runtime_reserve_bytes + int(accel.unit_memory_bytes * RESERVE_FRACTION)
    kv_cache = usable - weights_unit - reserve
    per_token = _kv_bytes_per_token_per_unit(model, par, req.kv_cache_dtype_bytes)
    kv_tokens = max(kv_cache, 0) // per_token
    log.note(
        f"per {unit}: {gib(usable)} usable ({utilization:.0%} of {gib(accel.unit_memory_bytes)}) "
        f"- {gib(weights_unit)} weights - {gib(reserve)} runtime reserve = {gib(kv_cache)} KV cache"
    )
    if weights_unit > usable - reserve:
        log.block(
            f"weights do not fit: {gib(weights_unit)} per {unit} is more than the "
            f"{gib(usable - reserve)} left after the runtime reserve ({split})",
            f"would not hold the weights ({gib(weights_unit)} per {unit}, "
            f"{gib(usable - reserve)} free)",
        )
        log.weights_blocked = True
        room = total_units * (usable - reserve)
        smallest_format = min(model.weights_bytes(f) for f in runnable_formats(accel, engine.kind))
        if smallest_format > room >= model.parameters * EXTREME_QUANT_BITS / 8:
            log.note(
                "only extreme (~1.6-bit) dynamic quantisations would fit this memory, and they run "
                "in llama.cpp-style engines, not in vLLM, SGLang or MindIE"
            )
    else:
        log.note(_describe_kv(model, per_token, unit) + f"; it holds {kv_tokens:,} tokens")

    max_len, seqs = _context(model, engine, req, par, kv_cache, per_token, log)
    max_num_seqs = req.max_num_seqs
    if engine.max_concurrency is not None:
        if max_num_seqs is not None and max_num_seqs > engine.max_concurrency:
            log.block(
                f"{engine.kind.value} serves at most {engine.max_concurrency} concurrent "
                f"requests ({max_num_seqs} asked)"
            )
        max_num_seqs = min(max_num_seqs or engine.max_concurrency, engine.max_concurrency)
    if req.speculative and engine.kind == EngineKind.VLLM_VACC and par.pipeline > 1:
        log.block("vllm_vacc runs MTP (speculative decoding) only without PP")
    memory = MemoryBudget(
        unit_bytes=accel.unit_memory_bytes,
        utilization=utilization,
        usable_bytes=usable,
        weights_bytes=weights_unit,
        reserve_bytes=reserve,
        kv_cache_bytes=kv_cache,
        kv_bytes_per_token=per_token,
        kv_tokens=kv_tokens,
    )
    return _Fit(par, memory, max_len, seqs, max_num_seqs, log)


def _weights_per_unit(model: ModelSpec, weights: int, par: Parallelism, weight_split: int) -> int:
    """Checkpoint bytes one unit holds. With experts spread over more ranks than TP (DP x TP
    ranks: data-expert parallelism, attention DP) each rank holds its 1/EP of the routed experts
    and a TP share of everything else, which each DP rank repeats."""
    if par.expert <= par.tensor:
        return math.ceil(weights / weight_split)
    experts = model.expert_bytes(weights)
    pp = weight_split // par.tensor
    return math.ceil((weights - experts) / weight_split + experts / (par.expert * pp))


@dataclass(frozen=True)
class _Rejected:
    candidate: LayoutCandidate
    why: str  # completes "<split> ...", e.g. "would not hold the weights (...)"
    sized: bool  # rejected by its memory or context, not by a rule
    weights: bool  # rejected because the weights do not fit


def _search_layout(
    model: ModelSpec,
    engine: Engine,
    req: SizingRequest,
    accel: Accelerator,
    fmt: WeightFormat,
    units_per_node: int,
    log: _Log,
) -> _Fit | None:
    """The first candidate split without blockers, with a sentence on why it and not a smaller
    one; None (and a sentence) when none is, for the caller to size the default layout."""
    unit = unit_name(accel)
    total = units_per_node * req.nodes
    version = req.engine_version or engine.default_version
    if req.nodes > 1 and engine.launches_with_ray(version, req.multi_node):
        log.note(
            f"layout search: a Ray launch does not place DP replicas across nodes, so only "
            f"splits with DP 1 are tried ({engine.kind.value} {version})"
        )
    if req.data_parallel_size is not None:
        log.note(f"layout search: DP {req.data_parallel_size} as asked; TP and PP are searched")
    candidates = layout_candidates(model, engine, req, units_per_node)
    target = req.max_model_len or min(model.max_position_embeddings, TARGET_MODEL_LEN)
    rejected: list[_Rejected] = []
    short: _Fit | None = None  # the first split that serves, below the target context
    for candidate in candidates:
        if candidate.rule is not None:
            rejected.append(_Rejected(candidate, candidate.rule, sized=False, weights=False))
            continue
        fit = _size_layout(
            model,
            engine,
            req,
            accel,
            fmt,
            candidate.parallelism,
            units_per_node,
            "layout search: the smallest instance that fits",
        )
        if fit.feasible and fit.max_model_len >= target:
            log.note(_layout_sentence(fit, total, unit, req, units_per_node, rejected, candidates))
            log.extend(fit.log)
            return fit
        if fit.feasible:
            short = short or fit
            why = f"would leave a {fit.max_model_len}-token context (under {target})"
            rejected.append(_Rejected(candidate, why, sized=True, weights=False))
            continue
        why = fit.log.why or "is blocked"
        rejected.append(_Rejected(candidate, why, sized=True, weights=fit.log.weights_blocked))
    if short is not None:
        log.note(
            f"layout: no split reaches a {target}-token context; the smallest instance that "
            "serves is taken: "
            + _layout_sentence(short, total, unit, req, units_per_node, [], candidates)[8:]
        )
        log.extend(short.log)
        return short
    why_not = _rejections_shown(rejected, None)
    log.note(
        f"layout: no TP x PP x DP split of the {total} {unit}s serves the model"
        + (f" ({'; '.join(why_not)})" if why_not else "")
        + "; the default layout is sized below, with what blocks it"
    )
    return None


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _rejections_shown(rejected: list[_Rejected], below: int | None) -> list[str]:
    """A few sentences on the splits tried before the chosen one (instance ``below``; None: all
    failed): the same instance with a smaller PP, then one per smaller instance, largest first.
    Once one does not hold the weights, no smaller instance does: they are not named."""
    shown = [r for r in rejected if below is not None and r.candidate.instance == below]
    by_size: dict[int, _Rejected] = {}
    for r in rejected:
        size = r.candidate.instance
        if below is not None and size >= below:
            continue
        # Per instance, the memory verdict says more than a rule that one TP of it breaks.
        if size not in by_size or (r.sized and not by_size[size].sized):
            by_size[size] = r
    sizes = sorted(by_size, reverse=True)
    smaller_too = False
    for index, size in enumerate(sizes):
        if len(shown) >= LAYOUT_REJECTIONS_SHOWN:
            break
        shown.append(by_size[size])
        if by_size[size].weights:
            smaller_too = index + 1 < len(sizes)
            break
    # Splits rejected for the same reason share one sentence: "TP 4 x PP 2 and TP 4 cannot ...".
    groups: list[tuple[list[str], str]] = []
    for r in shown[:LAYOUT_REJECTIONS_SHOWN]:
        name = _instance_name(r.candidate.parallelism)
        if groups and groups[-1][1] == r.why:
            groups[-1][0].append(name)
        else:
            groups.append(([name], r.why))
    texts = [f"{_and(names)} {why}" for names, why in groups]
    if smaller_too and texts:
        texts[-1] += ", nor would a smaller instance"
    return texts


def _layout_sentence(
    fit: _Fit,
    total: int,
    unit: str,
    req: SizingRequest,
    units_per_node: int,
    rejected: list[_Rejected],
    candidates: list[LayoutCandidate],
) -> str:
    par = fit.parallelism
    if par.data > 1:
        spread = f"{par.data} replicas behind one endpoint"
    elif req.nodes > 1:
        spread = f"one instance over {req.nodes} nodes"
    else:
        spread = "one instance"
    name = _instance_name(par)
    parts = [
        f"layout: {name} fits with a {fit.max_model_len}-token context, so {total} {unit}s give "
        f"{name} x DP {par.data} ({spread})",
        *_rejections_shown(rejected, par.tensor * par.pipeline),
    ]
    # The layout a guide would pick (TP = units per node, PP = nodes), if a rule excludes it.
    default = next(
        (
            c
            for c in candidates
            if (c.parallelism.tensor, c.parallelism.pipeline) == (units_per_node, req.nodes)
        ),
        None,
    )
    if default is not None and default.rule is not None:
        text = f"{_instance_name(default.parallelism)} {default.rule}"
        if not any(p.startswith(text) for p in parts):
            parts.append(text)
    return "; ".join(parts)


def _context(
    model: ModelSpec,
    engine: Engine,
    req: SizingRequest,
    par: Parallelism,
    kv_cache: int,
    per_token: int,
    log: _Log,
) -> tuple[int, int]:
    """The max model len and how many full-length sequences the KV cache holds."""
    cap, why = model.max_position_embeddings, "the model's max_position_embeddings"
    if engine.fixed_tensor_parallel is not None:
        limit = VACC_PP2_MAX_LEN if par.pipeline == 2 else VACC_PP1_MAX_LEN
        if limit < cap:
            cap, why = limit, f"{engine.kind.value}'s limit with PP{par.pipeline}"
    kv = req.kv_cache_dtype_bytes

    def fits(tokens: int) -> bool:
        return _sequence_bytes(model, per_token, tokens, kv) <= kv_cache

    if kv_cache <= 0:
        return req.max_model_len or cap, 0
    if req.max_model_len is not None:
        length, limit_why = req.max_model_len, why
        why = "as configured"
        if length > cap:
            log.block(
                f"max_model_len {length} exceeds {limit_why} ({cap})",
                f"cannot take max_model_len {length} ({limit_why}: {cap})",
            )
        elif not fits(length):
            log.block(
                f"max_model_len {length} does not fit: one sequence needs "
                f"{gib(_sequence_bytes(model, per_token, length, kv))} of KV cache per unit, "
                f"{gib(kv_cache)} is left",
                f"would not hold one {length}-token sequence ({gib(kv_cache)} of KV cache per "
                "unit)",
            )
    else:
        length = cap
        if not fits(length):
            low, high = 0, cap // 1024  # the longest length that fits, in 1024-token blocks
            while low < high:
                mid = (low + high + 1) // 2
                low, high = (mid, high) if fits(mid * 1024) else (low, mid - 1)
            length = low * 1024
            why = "what the KV cache holds"
        if length < MIN_USEFUL_MODEL_LEN:
            log.block(
                f"the KV cache holds only {kv_cache // max(per_token, 1):,} tokens: less than "
                f"{MIN_USEFUL_MODEL_LEN}-token context",
                f"would leave only a {length}-token context (under {MIN_USEFUL_MODEL_LEN})",
            )
    sequences = kv_cache // max(_sequence_bytes(model, per_token, length, kv), 1) * par.data
    log.note(f"max_model_len {length} ({why}): {sequences} full-length sequence(s) fit at once")
    return length, sequences


def _alternatives(model: ModelSpec, req: SizingRequest, accel: Accelerator) -> list[Alternative]:
    found: list[Alternative] = []
    formats = [model.native_format, *fallback_formats(model.native_format, accel, req.engine)]
    if req.weight_format is not None:
        formats.insert(0, req.weight_format)
    runnable = runnable_formats(accel, req.engine)
    for fmt in dict.fromkeys(f for f in formats if f in runnable):
        for nodes in range(req.nodes, req.nodes + ALTERNATIVE_SEARCH_NODES + 1):
            candidate = req.model_copy(
                update={
                    "nodes": nodes,
                    "weight_format": fmt,
                    "tensor_parallel_size": None,
                    "pipeline_parallel_size": None,
                    "data_parallel_size": None,
                    "max_model_len": req.max_model_len,
                }
            )
            if candidate == req:
                continue
            sized = size_model(model, candidate, with_alternatives=False)
            if sized.feasible:
                p = sized.parallelism
                found.append(
                    Alternative(
                        nodes=nodes,
                        devices_per_node=req.devices_per_node,
                        weight_format=fmt,
                        tensor_parallel_size=p.tensor,
                        pipeline_parallel_size=p.pipeline,
                        summary=(
                            f"{nodes} node(s) x {req.devices_per_node} {accel.id}, "
                            f"{fmt.value} weights, TP {p.tensor} x PP {p.pipeline}"
                            + (f" x DP {p.data}" if p.data > 1 else "")
                        ),
                    )
                )
                break
    found.sort(key=lambda a: (a.nodes, a.weight_format != model.native_format))
    return found[:2]
