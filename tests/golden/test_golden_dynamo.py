"""Golden files of Dynamo groups, from the example inventories (and variants of them) through
validation and planning to every container of every node: the control plane, the frontend and
each pool's workers, with the pools' shapes and the Plan's derived fields.

Regenerate with ``IRONSERVE_UPDATE_GOLDEN=1 pytest tests/golden``, then read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ironserve.config import build_cluster
from ironserve.config.inventory import HostRecord, load_inventory
from ironserve.plan.plan import Plan, plan_group
from tests.golden.test_golden_engines import GOLDEN_DIR, UPDATE_ENV, render

ROOT = Path(__file__).parents[2]

# name -> (example inventory, data every host gets on top of it)
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "dynamo-h200x8-2node-r1-sglang-disagg": ("h200x8_2node_r1_sglang_dynamo_disagg", {}),
    # The same recipe on 8 x 80 GB per worker: 641 GiB of FP8 weights do not fit one node.
    "dynamo-h100x8-2node-r1-sglang-disagg": (
        "h200x8_2node_r1_sglang_dynamo_disagg",
        {"accelerator_kind": "h100-80g"},
    ),
    "dynamo-h200x8-2node-r1-trtllm-disagg": (
        "h200x8_2node_r1_sglang_dynamo_disagg",
        {"dynamo_backend": "trtllm"},
    ),
    "dynamo-h100x8-2node-qwen3-32b-vllm-disagg-kv": ("h100x8_2node_qwen3_32b_vllm_dynamo_kv", {}),
    "dynamo-h100x8-1node-llama3-70b-vllm-agg": ("h100x8_llama3_70b_vllm_dynamo_agg", {}),
    "dynamo-h100x8-1node-llama3-70b-vllm-agg-file": (
        "h100x8_llama3_70b_vllm_dynamo_agg",
        {"dynamo_control_plane": "file", "dynamo_router_mode": "round-robin"},
    ),
    # The recipe collection's other model x backend x mode (docs/inventory.md).
    "dynamo-h100x8-2node-llama3-70b-vllm-disagg": (
        "h100x8_2node_llama3_70b_vllm_dynamo_disagg",
        {},
    ),
    "dynamo-gb200x4-1node-gpt-oss-120b-trtllm-agg": ("gb200x4_gpt_oss_120b_trtllm_dynamo_agg", {}),
    "dynamo-h100x8-2node-qwen3-235b-trtllm-agg": ("h100x8_2node_qwen3_235b_trtllm_dynamo_agg", {}),
    "dynamo-h200x8-2node-qwen3-235b-trtllm-disagg": (
        "h200x8_2node_qwen3_235b_trtllm_dynamo_disagg",
        {},
    ),
    # The recipe's "H100/H200" for disaggregated: a TP 2 prefill worker's 110 GiB of FP8
    # weights do not fit an 80 GB GPU.
    "dynamo-h100x8-2node-qwen3-235b-trtllm-disagg": (
        "h200x8_2node_qwen3_235b_trtllm_dynamo_disagg",
        {"accelerator_kind": "h100-80g"},
    ),
    "dynamo-h200x8-4node-r1-vllm-dep16": ("h200x8_4node_r1_vllm_dynamo_dep16", {}),
    "dynamo-h200x8-4node-r1-sglang-wideep": ("h200x8_4node_r1_sglang_dynamo_wideep", {}),
    "dynamo-gb200x4-4node-r1-vllm-dep8": ("gb200x4_4node_r1_vllm_dynamo_dep8", {}),
    # The TensorRT-LLM wide-EP recipe with the checkpoint it serves, NVIDIA's FP4 one: DEP 4
    # workers, one per GB200 tray, about 122 GiB of weights per GPU.
    "dynamo-gb200x4-4node-r1-fp4-trtllm-wideep": ("gb200x4_4node_r1_fp4_trtllm_dynamo_wideep", {}),
    # The recipe's own shape: one DEP 32 decode worker over 8 trays, one MPI world (mpirun on
    # the first decode tray, sshd on the others), the prefill worker DEP 4 on its tray.
    "dynamo-gb200x4-9node-r1-fp4-trtllm-wideep-dep32": (
        "gb200x4_9node_r1_fp4_trtllm_dynamo_wideep_dep32",
        {},
    ),
    # The TensorRT-LLM wide-EP recipe's prefill worker, DEP 4 on one GB200 tray, with the FP8
    # checkpoint: 174 GiB per GPU; the recipe serves NVIDIA's FP4 one.
    "dynamo-gb200x4-4node-r1-trtllm-dep4-fp8": (
        "gb200x4_4node_r1_vllm_dynamo_dep8",
        {
            "dynamo_backend": "trtllm",
            "dynamo_prefill": {
                "tensor_parallel_size": 1,
                "data_parallel_size": 4,
                "expert_parallel": True,
            },
            "dynamo_decode": {
                "tensor_parallel_size": 1,
                "data_parallel_size": 4,
                "expert_parallel": True,
            },
        },
    ),
}


def recipe_plan(name: str) -> Plan:
    inventory, extra = RECIPES[name]
    records = [
        HostRecord(r.name, r.groups, {**r.data, **extra})
        for r in load_inventory(f"inventories/{inventory}.py", str(ROOT))
    ]
    (group,) = build_cluster(records).groups
    return plan_group(group)


def pools(plan: Plan) -> list[str]:
    doc = plan.dynamo_summary()
    assert doc is not None
    return [f"# pool: {json.dumps(p, sort_keys=True)}" for p in doc["pools"]] + [
        f"# blocker: {b}" for b in plan.sizing.blockers
    ]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_dynamo_recipes_match_golden(name: str) -> None:
    plan = recipe_plan(name)
    text = render(plan.context, plan.nodes, plan)
    head, _, rest = text.partition("\n\n")
    text = "\n".join([head, *pools(plan)]) + "\n\n" + rest
    path = GOLDEN_DIR / f"{name}.txt"
    if os.environ.get(UPDATE_ENV) == "1":
        path.write_text(text)
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; create it with {UPDATE_ENV}=1 and review it")
    assert text == path.read_text(), (
        f"{name}: the rendered Dynamo launch differs from {path}; if the change is intended, "
        f"regenerate with {UPDATE_ENV}=1 and review the diff"
    )
