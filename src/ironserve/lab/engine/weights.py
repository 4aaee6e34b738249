"""The checks a real engine makes of a weights folder before it loads anything.

config.json readable; every shard named in model.safetensors.index.json present with a valid
safetensors header (8-byte little-endian length, then that much JSON, and the file at least as
long as the header says); attention and KV heads divisible by TP; PP no larger than the layers.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the header


class WeightsError(Exception):
    pass


@dataclass(frozen=True)
class Weights:
    path: Path
    config: dict[str, Any]
    shards: list[Path]
    total_bytes: int  # bytes of the shards


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file; WeightsError if it is not one."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER or 8 + length > size:
            raise WeightsError(f"{path}: corrupt safetensors header (length {length})")
        try:
            header: dict[str, Any] = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise WeightsError(f"{path}: corrupt safetensors header ({error})") from None
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        _start, stop = info["data_offsets"]
        end = max(end, stop)
    if 8 + length + end > size:
        raise WeightsError(f"{path}: truncated ({size} bytes, the header needs {8 + length + end})")
    return header


def check(path: str, tensor_parallel: int, pipeline_parallel: int = 1) -> Weights:
    folder = Path(path)
    if not folder.is_dir():
        raise WeightsError(f"{folder}: no such model folder")
    config_file = folder / "config.json"
    try:
        config: dict[str, Any] = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{config_file}: missing (not a Hugging Face model folder)") from None
    except json.JSONDecodeError as error:
        raise WeightsError(f"{config_file}: not JSON ({error})") from None
    index_file = folder / "model.safetensors.index.json"
    if index_file.is_file():
        index = json.loads(index_file.read_text())
        names = sorted(set(index.get("weight_map", {}).values()))
        if not names:
            raise WeightsError(f"{index_file}: weight_map names no shard")
    elif (folder / "model.safetensors").is_file():
        names = ["model.safetensors"]
    else:
        raise WeightsError(f"{folder}: no model.safetensors.index.json and no model.safetensors")
    shards = [folder / name for name in names]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise WeightsError(f"{folder}: missing shard(s): {', '.join(missing)}")
    for shard in shards:
        safetensors_header(shard)
    text = config.get("text_config", config)  # multimodal configs nest the language model
    heads = int(text.get("num_attention_heads", 0) or 0)
    kv_heads = int(text.get("num_key_value_heads", heads) or heads)
    layers = int(text.get("num_hidden_layers", 0) or 0)
    if heads and heads % tensor_parallel:
        raise WeightsError(
            f"Total number of attention heads ({heads}) must be divisible by tensor parallel "
            f"size ({tensor_parallel})."
        )
    if kv_heads and kv_heads % tensor_parallel and tensor_parallel % kv_heads:
        raise WeightsError(
            f"Total number of key/value heads ({kv_heads}) must be divisible by tensor "
            f"parallel size ({tensor_parallel}) or the other way round."
        )
    if layers and pipeline_parallel > layers:
        raise WeightsError(
            f"pipeline parallel size ({pipeline_parallel}) is larger than the number of "
            f"hidden layers ({layers})"
        )
    total = sum(s.stat().st_size for s in shards)
    return Weights(path=folder, config=config, shards=shards, total_bytes=total)
