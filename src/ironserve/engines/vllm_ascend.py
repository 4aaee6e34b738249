"""vLLM-Ascend (quay.io/ascend/vllm-ascend images): `vllm serve` on Ascend NPUs.

The image is vLLM with the vLLM-Ascend platform plugin, so the command line is vLLM's
(engines/vllm.py, checked against vLLM's table at the release vllm-ascend is built on) and the
launch across nodes is vLLM's native one (``--nnodes``/``--node-rank``/``--master-addr``,
``--headless`` off node 0). What differs is the platform: the NPUs, the driver's control devices
and mounts (engines/ascend.py, as MindIE's containers get them) instead of ``--gpus``, and the
env of the vLLM-Ascend multi-node guide: ``ASCEND_RT_VISIBLE_DEVICES``, ``HCCL_IF_IP`` (the
node's address for HCCL's host-side sockets) and the interface for HCCL, Gloo and TensorPipe;
a W8A8 checkpoint adds ``--quantization ascend``, the plugin's method.
The API key reaches vLLM as ``VLLM_API_KEY`` from the node's env file, as on CUDA.
"""

from __future__ import annotations

from ironserve.catalog.formats import WeightFormat
from ironserve.engines.ascend import npu_run_args, visible_devices
from ironserve.engines.base import LaunchContext, NodeLaunch, NodeTarget
from ironserve.engines.common import is_multi_node, socket_env
from ironserve.engines.vllm import Platform, build_on

SOCKET_ENV = ("HCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME")


def _env(ctx: LaunchContext, node: NodeTarget) -> dict[str, str]:
    env = {"ASCEND_RT_VISIBLE_DEVICES": visible_devices(node)}
    if is_multi_node(ctx):
        env["HCCL_IF_IP"] = node.address
        env |= socket_env(node, SOCKET_ENV)
    return env


def _no_fabric(node: NodeTarget) -> list[str]:
    return []  # the NPUs' own RoCE ports (hccn) need no device in the container


def _options(ctx: LaunchContext) -> tuple[str, ...]:
    """A W8A8 checkpoint (msModelSlim's, Ascend's published DeepSeek path) is read by the
    plugin's own quantization method, named ``ascend``; vLLM would not pick it from config.json."""
    if ctx.sizing.weight_format == WeightFormat.W8A8:
        return ("--quantization", "ascend")
    return ()


ASCEND = Platform(
    name="vllm_ascend",
    devices=npu_run_args,
    fabric=_no_fabric,
    env=_env,
    ray=False,
    options=_options,
)


def build(ctx: LaunchContext) -> list[NodeLaunch]:
    return build_on(ctx, ASCEND)
