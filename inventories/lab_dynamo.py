"""The lab (`ironserve lab up --dynamo`) serving NVIDIA Dynamo, disaggregated: the same hosts as
inventories/lab.py (real SSH, the lab's keys, registry, hub and API key), one serving group that
runs Dynamo 1.6.1 with the KV router:

- the first node (the head, pool ``frontend``): etcd, NATS (JetStream) and ``dynamo.frontend``
  behind the gateway, which checks the lab's API key;
- the second node: the prefill pool, the third: the decode pool (more nodes alternate), one
  worker each (``dynamo.vllm``: in the lab, Dynamo's mocker behind the real worker command line,
  src/ironserve/lab/engine/dynamo_vllm_cli.py), the KV cache handed over NIXL over TCP (the lab
  has no RDMA);
- the lab's real model (SmolLM2-135M-Instruct from the lab hub: the mocker reads its tokenizer
  and config), and the images the lab registry holds (lab/dynamo_image.py): the Dynamo runtime,
  Debian bookworm's etcd and nats-server.

    ironserve lab up --dynamo --nodes 3 --profile labgpu
    pyinfra -y inventories/lab_dynamo.py deploys/site.py
    ironserve lab chat "Say hello."
"""

import runpy as _runpy
import sys as _sys
from pathlib import Path as _Path

# Each pool's one worker on one lab GPU; more would only cost the lab's memory.
_ONE_WORKER = {"tensor_parallel_size": 1, "workers_per_node": 1}
# What one lab GPU (512 MiB) holds beside the model's weights: 1,079 tokens of KV cache.
_MAX_LEN = 1024


def _pools(count):
    """Node i's pool: the head the frontend's, then prefill and decode in turn."""
    if count < 2:
        return ["prefill"] * count  # refused by validation: a decode pool is needed
    first = ["frontend"] if count >= 3 else []
    workers = ["prefill", "decode"] * count
    return first + workers[: count - len(first)]


def _dynamo(hosts):
    from ironserve.lab import dynamo_image, real_model

    pools = _pools(len(hosts))
    dynamo = []
    for (name, data), pool in zip(hosts, pools, strict=True):
        data = {k: v for k, v in data.items() if k not in ("engine_extra_args", "engine_image")}
        data |= {
            "engine_kind": "dynamo",
            "engine_version": dynamo_image.VERSION,
            "model_id": real_model.REPO_ID,
            "model_served_name": real_model.REPO_ID.split("/")[1],
            "model_max_len": _MAX_LEN,
            "node_dynamo_pool": pool,
            "dynamo_backend": "vllm",
            "dynamo_mode": "disaggregated",
            "dynamo_router_mode": "kv",
            "dynamo_control_plane": "etcd-nats",
            "dynamo_kv_fabric": "tcp",
            "dynamo_prefill": _ONE_WORKER,
            "dynamo_decode": _ONE_WORKER,
        }
        registry = data.get("_lab_registry")
        if registry:  # pinned by digest from the lab registry itself, as inventories/lab.py does
            data |= {key: f"{registry}/{ref}" for key, ref in dynamo_image.references().items()}
        dynamo.append((name, data))
    return dynamo


# inventories/lab.py's hosts (its state, keys, registry, hub, API key), run as pyinfra would.
_lab = _runpy.run_path(str(_Path(__file__).resolve().with_name("lab.py")))["lab"]
if _lab and len(_lab) < 2:
    print("inventories/lab_dynamo.py: a Dynamo lab needs 2 nodes or more", file=_sys.stderr)
# The group is `lab`, as in inventories/lab.py: group_data/lab.py applies.
lab = _dynamo(_lab)
