"""Model architecture facts, read from a model's config.json.

The catalog ships the config.json of each supported model (data/models/*.json, with its source);
a model not in the catalog is added from a local config.json with :func:`spec_from_config`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ironserve.catalog.formats import BYTES_PER_PARAM, WeightFormat
from ironserve.errors import did_you_mean

_DTYPES = {"bfloat16": WeightFormat.BF16, "float16": WeightFormat.FP16}
_QUANT_METHODS = {
    "fp8": WeightFormat.FP8,
    "mxfp4": WeightFormat.MXFP4,
    "awq": WeightFormat.INT4,
    "gptq": WeightFormat.INT4,
    "w8a8_int8": WeightFormat.W8A8,
}
# Reasoning parsers by architecture family, as vLLM and SGLang name them.
_REASONING_PARSERS = {"deepseek_v3": "deepseek_r1", "qwen3": "qwen3", "qwen3_moe": "qwen3"}


class UnknownModel(KeyError):
    def __init__(self, model_id: str, known: list[str]) -> None:
        self.model_id = model_id
        super().__init__(f"unknown model {model_id!r}{did_you_mean(model_id, known)}")

    def __str__(self) -> str:
        return str(self.args[0])


class ModelSpec(BaseModel):
    """What the planner needs to know about a model, all derived from its config.json."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    architecture: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int  # per-head dimension of K/V (MLA: v_head_dim of the decompressed heads)
    vocab_size: int
    max_position_embeddings: int
    native_format: WeightFormat
    parameters: int
    bytes_on_disk: int
    # Mixture of experts (0 = dense).
    num_experts: int = 0
    experts_per_token: int = 0
    # Parameters of the routed experts (every MoE layer's): what expert parallelism splits;
    # the rest (attention, dense and shared MLPs, embeddings) each EP rank holds in full.
    expert_parameters: int = 0
    # Multi-head latent attention (DeepSeek-V3/R1): the KV cache holds one compressed latent.
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    # Layers with a sliding window keep at most this many tokens of KV (gpt-oss alternates).
    sliding_window: int = 0
    sliding_window_layers: int = 0
    reasoning_parser: str | None = None
    # A quantised export's source model (the model card's base_model): what to serve where the
    # export's format does not run.
    base_model: str | None = None
    # The routed experts' bytes in the published checkpoint, where they are stored in another
    # format than the rest (NVFP4 experts beside BF16 attention): 0 = in proportion to parameters.
    expert_bytes_on_disk: int = 0
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def uses_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def short_name(self) -> str:
        return self.id.rsplit("/", 1)[-1]

    def expert_bytes(self, weights: int) -> int:
        """The routed experts' share of ``weights`` checkpoint bytes: measured for the published
        checkpoint where the catalog has it, else by parameter count."""
        if not self.parameters:
            return 0
        if self.expert_bytes_on_disk and weights == self.bytes_on_disk:
            return self.expert_bytes_on_disk
        return weights * min(self.expert_parameters, self.parameters) // self.parameters

    def weights_bytes(self, fmt: WeightFormat) -> int:
        """Bytes of the checkpoint in a format: exact for the native one, estimated otherwise."""
        if fmt == self.native_format:
            return self.bytes_on_disk
        return int(self.parameters * BYTES_PER_PARAM[fmt])

    def kv_bytes_per_token(self, kv_dtype_bytes: int = 2) -> int:
        """KV-cache bytes one token costs across all layers, before any parallel split.

        MLA caches the compressed latent plus the rope key once per layer (no per-head K/V);
        GQA caches K and V for every KV head.
        """
        if self.uses_mla:
            per_layer = self.kv_lora_rank + self.qk_rope_head_dim
        else:
            per_layer = 2 * self.num_kv_heads * self.head_dim
        return per_layer * self.num_layers * kv_dtype_bytes

    def kv_bytes_for_sequence(self, tokens: int, kv_dtype_bytes: int = 2) -> int:
        """KV bytes one sequence of ``tokens`` tokens needs, with sliding-window layers capped."""
        if not self.sliding_window_layers:
            return self.kv_bytes_per_token(kv_dtype_bytes) * tokens
        per_layer_token = self.kv_bytes_per_token(kv_dtype_bytes) // self.num_layers
        full = self.num_layers - self.sliding_window_layers
        windowed = min(tokens, self.sliding_window)
        return per_layer_token * (full * tokens + self.sliding_window_layers * windowed)


def _reasoning_parser(model_id: str, model_type: str) -> str | None:
    # R1's distills are Qwen2/Llama models trained to think like R1: same parser.
    if "deepseek-r1" in model_id.lower():
        return "deepseek_r1"
    return _REASONING_PARSERS.get(model_type)


def _modelopt_format(quant: dict[str, Any]) -> WeightFormat | None:
    """The format of a ModelOpt export: ``quant_algo`` in config.json's quantization_config
    (ModelOpt 0.31+, quant_method "modelopt") or in hf_quant_config.json's ``quantization``
    section (ModelOpt 0.29 and before, e.g. nvidia/DeepSeek-R1-FP4); vLLM reads either."""
    nested = quant.get("quantization")
    section: dict[str, Any] = nested if isinstance(nested, dict) else quant
    algo = str(section.get("quant_algo") or "").upper()
    return {"NVFP4": WeightFormat.NVFP4, "FP8": WeightFormat.FP8}.get(algo)


def _native_format(config: dict[str, Any]) -> WeightFormat:
    quant = config.get("quantization_config") or {}
    method = str(quant.get("quant_method", "")).lower()
    modelopt = _modelopt_format(quant) if method in ("modelopt", "") else None
    if modelopt is not None:
        return modelopt
    if method in _QUANT_METHODS:
        return _QUANT_METHODS[method]
    if method:
        raise ValueError(f"quantization_config.quant_method {method!r} is not supported")
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    if dtype not in _DTYPES:
        raise ValueError(f"torch_dtype {dtype!r} is not supported")
    return _DTYPES[dtype]


def _moe_layers(config: dict[str, Any], experts: int) -> int:
    """How many layers of the checkpoint route to experts: DeepSeek's first
    ``first_k_dense_replace`` layers are dense (then every ``moe_layer_freq``-th) and its
    multi-token-prediction layers (``num_nextn_predict_layers``, stored after the decoder's) are
    MoE layers too; Qwen-MoE's ``mlp_only_layers`` are dense and ``decoder_sparse_step`` spaces
    the rest; gpt-oss routes in every layer."""
    if not experts:
        return 0
    layers = int(config["num_hidden_layers"])
    first_dense = int(config.get("first_k_dense_replace") or 0)
    step = int(config.get("moe_layer_freq") or config.get("decoder_sparse_step") or 1)
    dense_only = {int(i) for i in config.get("mlp_only_layers") or []}
    decoder = sum(
        1 for i in range(layers) if i >= first_dense and i not in dense_only and (i + 1) % step == 0
    )
    return decoder + int(config.get("num_nextn_predict_layers") or 0)


def _expert_parameters(config: dict[str, Any], experts: int) -> int:
    """Routed experts' parameters: gate, up and down projections of every expert of every MoE
    layer (``moe_intermediate_size``, else the per-expert ``intermediate_size`` of gpt-oss)."""
    if not experts:
        return 0
    inter = int(config.get("moe_intermediate_size") or config["intermediate_size"])
    return _moe_layers(config, experts) * experts * 3 * int(config["hidden_size"]) * inter


def _estimate_parameters(config: dict[str, Any]) -> int:
    """Parameter count from the shapes, for a config.json without safetensors metadata."""
    h = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or h // heads)
    vocab = int(config["vocab_size"])
    attn = h * head_dim * (heads + 2 * kv_heads) + heads * head_dim * h
    experts = int(config.get("n_routed_experts") or config.get("num_experts") or 0)
    if experts:
        ffn = (
            3
            * h
            * int(config.get("moe_intermediate_size") or config["intermediate_size"])
            * experts
        )
    else:
        ffn = 3 * h * int(config["intermediate_size"])
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    return layers * (attn + ffn) + embeddings


def spec_from_config(
    model_id: str,
    config: dict[str, Any],
    *,
    parameters: int | None = None,
    bytes_on_disk: int | None = None,
    expert_bytes_on_disk: int = 0,
    base_model: str | None = None,
    source: str = "",
) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config.json (already parsed)."""
    try:
        model_type = str(config["model_type"])
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        native = _native_format(config)
        params = parameters or _estimate_parameters(config)
        experts = int(
            config.get("n_routed_experts")
            or config.get("num_experts")
            or config.get("num_local_experts")
            or 0
        )
        per_token = int(config.get("num_experts_per_tok") or config.get("experts_per_token") or 0)
        layer_types = config.get("layer_types") or []
        sliding = int(config.get("sliding_window") or 0)
        sliding_layers = sum(1 for t in layer_types if t == "sliding_attention") if sliding else 0
        return ModelSpec(
            id=model_id,
            architecture=str((config.get("architectures") or [model_type])[0]),
            model_type=model_type,
            num_layers=int(config["num_hidden_layers"]),
            hidden_size=hidden,
            num_attention_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("v_head_dim") or config.get("head_dim") or hidden // heads),
            vocab_size=int(config["vocab_size"]),
            max_position_embeddings=int(config["max_position_embeddings"]),
            native_format=native,
            parameters=params,
            bytes_on_disk=bytes_on_disk or int(params * BYTES_PER_PARAM[native]),
            num_experts=experts,
            experts_per_token=per_token,
            expert_parameters=_expert_parameters(config, experts),
            kv_lora_rank=int(config.get("kv_lora_rank") or 0),
            qk_rope_head_dim=int(config.get("qk_rope_head_dim") or 0),
            sliding_window=sliding,
            sliding_window_layers=sliding_layers,
            reasoning_parser=_reasoning_parser(model_id, model_type),
            base_model=base_model,
            expert_bytes_on_disk=expert_bytes_on_disk,
            source=source,
        )
    except KeyError as missing:
        raise ValueError(f"config.json of {model_id} lacks {missing}") from None


def spec_from_config_file(model_id: str, path: Path) -> ModelSpec:
    """A model that is not in the catalog, from a local config.json (and the
    hf_quant_config.json beside it, where an older ModelOpt export keeps its quantisation)."""
    config = json.loads(path.read_text())
    beside = path.with_name("hf_quant_config.json")
    if not config.get("quantization_config") and beside.is_file():
        config["quantization_config"] = json.loads(beside.read_text())
    return spec_from_config(model_id, config, source=str(path))


@cache
def catalog_models() -> dict[str, ModelSpec]:
    """Every model the catalog ships, by Hugging Face id."""
    models: dict[str, ModelSpec] = {}
    folder = resources.files("ironserve.catalog").joinpath("data/models")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        doc = json.loads(entry.read_text())
        spec = spec_from_config(
            doc["id"],
            doc["config"],
            parameters=doc["parameters"],
            bytes_on_disk=doc["bytes_on_disk"],
            expert_bytes_on_disk=doc.get("expert_bytes_on_disk", 0),
            base_model=doc.get("base_model"),
            source=doc["source"],
        )
        models[spec.id] = spec
    return models


def get_model(model_id: str, config_file: Path | None = None) -> ModelSpec:
    """A catalog model by id, or one described by a local config.json."""
    if config_file is not None:
        return spec_from_config_file(model_id, config_file)
    models = catalog_models()
    if model_id in models:
        return models[model_id]
    lowered = {k.lower(): k for k in models}
    if model_id.lower() in lowered:
        return models[lowered[model_id.lower()]]
    raise UnknownModel(model_id, list(models))
