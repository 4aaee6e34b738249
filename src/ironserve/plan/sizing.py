"""Will it fit, and how to split it: memory budget, parallelism and capacity. Pure, no I/O.

Every decision appends a sentence to ``reasons``; a sentence that makes the plan infeasible is
also appended to ``blockers``. The numbers follow what the engines do at load time: weights are
split over TP x PP ranks, each rank keeps ``memory_utilization`` of its device, a runtime reserve
goes to activations and communication buffers, and the rest is KV cache.
"""

from __future__ import annotations

import math

from packaging.version import InvalidVersion, Version

from ironserve.catalog.accelerators import ACCELERATORS, Accelerator
from ironserve.catalog.engines import ENGINES, Engine, EngineKind
from ironserve.catalog.formats import WeightFormat
from ironserve.catalog.models import ModelSpec, get_model
from ironserve.errors import did_you_mean
from ironserve.plan.types import Alternative, MemoryBudget, Parallelism, Sizing, SizingRequest

GIB = 1024**3
# Runtime reserve per unit: CUDA/CANN context, communication buffers, CUDA graphs and the
# activation peak of a prefill batch. vLLM measures it with a profiling run; this is its usual size.
RESERVE_FIXED_BYTES = 2 * GIB
RESERVE_FRACTION = 0.04
# Below this context length a deployment is not worth calling feasible.
MIN_USEFUL_MODEL_LEN = 4096
# vllm_vacc's limits (Vastai's DeepSeek-R1 guide): TP32; PP2 only for long inputs.
VACC_PP1_MAX_LEN = 65536
VACC_PP2_MAX_LEN = 131072
# If not even this many bits per parameter fit, no serving engine will run the model here.
EXTREME_QUANT_BITS = 1.58
ALTERNATIVE_SEARCH_NODES = 16
# "Starting from 0.18.0, vLLM no longer depends on Ray by default" (vLLM RFC #33445).
VLLM_WITHOUT_RAY = Version("0.18.0")


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

    def note(self, text: str) -> None:
        self.reasons.append(text)

    def block(self, text: str) -> None:
        self.reasons.append(text)
        self.blockers.append(text)


def _choose_format(
    model: ModelSpec, accel: Accelerator, wanted: WeightFormat | None, log: _Log
) -> WeightFormat:
    if wanted is not None:
        if wanted not in accel.formats:
            supported = ", ".join(sorted(f.value for f in accel.formats))
            log.block(f"{accel.id} does not run {wanted.value} weights (it runs {supported})")
        elif wanted != model.native_format:
            log.note(
                f"weights: {wanted.value} checkpoint asked for (the published one is "
                f"{model.native_format.value}); its size is estimated from the parameter count"
            )
        return wanted
    if model.native_format in accel.formats:
        return model.native_format
    fallback = fallback_formats(model.native_format, accel)
    chosen = fallback[0] if fallback else model.native_format
    why = f" ({accel.note})" if accel.note else ""
    log.note(
        f"weights: {accel.id} does not run the published {model.native_format.value} checkpoint"
        f"{why}; planning a {chosen.value} checkpoint of the same model instead"
    )
    return chosen


def fallback_formats(native: WeightFormat, accel: Accelerator) -> list[WeightFormat]:
    # FP8 -> BF16 is the lossless upcast NVIDIA users run; Ascend's published R1 path is W8A8.
    fp8_order = [WeightFormat.W8A8, WeightFormat.BF16]
    if accel.vendor != "ascend":
        fp8_order.reverse()
    order = {
        WeightFormat.FP8: fp8_order,
        WeightFormat.MXFP4: [WeightFormat.BF16],
        WeightFormat.INT4: [WeightFormat.BF16],
    }.get(native, [WeightFormat.BF16, WeightFormat.FP16])
    return [f for f in order if f in accel.formats]


def _choose_parallelism(
    model: ModelSpec,
    engine: Engine,
    req: SizingRequest,
    units_per_node: int,
    log: _Log,
) -> Parallelism:
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
    ep = 1
    if req.expert_parallel:
        if not model.is_moe:
            log.block(f"expert parallelism asked, but {model.id} is not a mixture-of-experts model")
        elif not engine.supports_expert_parallel:
            log.block(f"{engine.kind.value} does not support expert parallelism")
        else:
            ep = tp * dp
    return Parallelism(tensor=tp, pipeline=pp, data=dp, expert=ep)


def _check_divisibility(
    model: ModelSpec,
    engine: Engine,
    par: Parallelism,
    req: SizingRequest,
    units_per_node: int,
    log: _Log,
) -> None:
    tp = par.tensor
    if model.num_attention_heads % tp:
        log.block(
            f"attention heads ({model.num_attention_heads}) are not divisible by TP {tp} "
            "(rule: heads % TP == 0)"
        )
    kv = model.num_kv_heads
    if not model.uses_mla and ((tp <= kv and kv % tp) or (tp > kv and tp % kv)):
        log.block(
            f"KV heads ({kv}) and TP {tp} do not divide (rule: KV heads % TP == 0, or TP % KV "
            "heads == 0 when KV heads are replicated)"
        )
    if par.expert > 1 and model.num_experts % par.expert:
        log.block(f"experts ({model.num_experts}) are not divisible by EP {par.expert}")
    if par.pipeline > model.num_layers:
        log.block(f"PP {par.pipeline} exceeds the model's {model.num_layers} layers")
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


def size_model(model: ModelSpec, req: SizingRequest, *, with_alternatives: bool = True) -> Sizing:
    if req.accelerator_id not in ACCELERATORS:
        raise UnknownAccelerator(req.accelerator_id)
    accel = ACCELERATORS[req.accelerator_id]
    engine = ENGINES[req.engine]
    unit = unit_name(accel)
    log = _Log()
    if accel.vendor not in engine.vendors:
        log.block(f"{engine.kind.value} does not run on {accel.vendor} accelerators ({accel.id})")
    version = req.engine_version or engine.default_version
    if engine.kind == EngineKind.VLLM and req.nodes > 1 and _at_least(version, VLLM_WITHOUT_RAY):
        log.block(
            f"vLLM {version} images no longer bundle Ray, which ironserve's multi-node vLLM launch "
            f"uses; set engine_version below {VLLM_WITHOUT_RAY}"
        )
    fmt = _choose_format(model, accel, req.weight_format, log)
    weights = model.weights_bytes(fmt)
    units_per_node = req.devices_per_node * accel.units_per_device
    total_units = units_per_node * req.nodes
    log.note(
        f"weights: {model.id} in {fmt.value} is {gib(weights)}"
        + (" (the published checkpoint)" if fmt == model.native_format else " (estimated)")
    )
    par = _choose_parallelism(model, engine, req, units_per_node, log)
    _check_divisibility(model, engine, par, req, units_per_node, log)
    log.note(
        f"parallelism: TP {par.tensor} x PP {par.pipeline} x DP {par.data}"
        + (f", EP {par.expert}" if par.expert > 1 else "")
        + f" over {req.nodes} node(s) x {units_per_node} {unit}s ({log.layout})"
    )

    # Memory budget of one unit.
    utilization = req.memory_utilization or engine.memory_utilization
    usable = int(accel.unit_memory_bytes * utilization)
    weight_split = par.tensor * (1 if engine.fixed_tensor_parallel is not None else par.pipeline)
    weights_unit = math.ceil(weights / weight_split)
    reserve = RESERVE_FIXED_BYTES + int(accel.unit_memory_bytes * RESERVE_FRACTION)
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
            f"{gib(usable - reserve)} left after the runtime reserve ({gib(weights)} over "
            f"{weight_split} {unit}s)"
        )
        room = total_units * (usable - reserve)
        smallest_format = min(model.weights_bytes(f) for f in accel.formats)
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

    feasible = not log.blockers
    alternatives: list[Alternative] = []
    if not feasible and with_alternatives:
        alternatives = _alternatives(model, req, accel)
        if alternatives:
            log.note("nearest feasible: " + "; or ".join(a.summary for a in alternatives))
        else:
            log.note(f"no feasible layout with up to {req.nodes + ALTERNATIVE_SEARCH_NODES} nodes")
    return Sizing(
        request=req,
        feasible=feasible,
        reasons=log.reasons,
        blockers=log.blockers,
        weight_format=fmt,
        weights_bytes=weights,
        parallelism=par,
        memory=MemoryBudget(
            unit_bytes=accel.unit_memory_bytes,
            utilization=utilization,
            usable_bytes=usable,
            weights_bytes=weights_unit,
            reserve_bytes=reserve,
            kv_cache_bytes=kv_cache,
            kv_bytes_per_token=per_token,
            kv_tokens=kv_tokens,
        ),
        max_model_len=max_len,
        max_num_seqs=max_num_seqs,
        full_length_sequences=seqs,
        alternatives=alternatives,
    )


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
            log.block(f"max_model_len {length} exceeds {limit_why} ({cap})")
        elif not fits(length):
            log.block(
                f"max_model_len {length} does not fit: one sequence needs "
                f"{gib(_sequence_bytes(model, per_token, length, kv))} of KV cache per unit, "
                f"{gib(kv_cache)} is left"
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
                f"{MIN_USEFUL_MODEL_LEN}-token context"
            )
    sequences = kv_cache // max(_sequence_bytes(model, per_token, length, kv), 1) * par.data
    log.note(f"max_model_len {length} ({why}): {sequences} full-length sequence(s) fit at once")
    return length, sequences


def _alternatives(model: ModelSpec, req: SizingRequest, accel: Accelerator) -> list[Alternative]:
    found: list[Alternative] = []
    formats = [model.native_format, *fallback_formats(model.native_format, accel)]
    if req.weight_format is not None:
        formats.insert(0, req.weight_format)
    for fmt in dict.fromkeys(f for f in formats if f in accel.formats):
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
                        ),
                    )
                )
                break
    found.sort(key=lambda a: (a.nodes, a.weight_format != model.native_format))
    return found[:2]
