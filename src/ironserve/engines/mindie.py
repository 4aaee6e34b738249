"""MindIE Service on Ascend 910B (Atlas 800I A2): a daemon driven by config.json and a rank table.

Every node runs the same container with its own config.json (``ServerConfig.ipAddress`` is that
node's address, as GPUStack's ascend_mindie.py writes it). Multi-node adds rank_table_file.json
(format 1.0, the A2 generation): all values strings, ``device_id`` the physical NPU index,
``rank_id`` global and contiguous per server, rank 0 the master -- the only node that serves
requests (MindIE 1.0.RC2 install guide, instg_0026). ``RANKTABLEFILE`` is set only multi-node:
single-node MindIE does not read it, but the acceleration library still might.

The API key: MindIE Service has no API-key option, so the container gets no secrets env file;
the gateway (roles/gateway) checks the key in front of it. MindIE keeps its node's address
(its ranks reach one another there) on the backend port, which the firewall keeps to the group.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ironserve.engines.ascend import npu_run_args, read_only
from ironserve.engines.base import (
    NODE_STATE_DIR,
    ContainerSpec,
    LaunchContext,
    NodeLaunch,
    NodeTarget,
    RenderedFile,
)
from ironserve.engines.common import (
    EngineBuildError,
    base_run_args,
    check_ranks,
    container_name,
    fmt_fraction,
    is_multi_node,
    weights_mount,
)

MINDIE_SERVICE_DIR = "/usr/local/Ascend/mindie/latest/mindie-service"
DAEMON = f"{MINDIE_SERVICE_DIR}/bin/mindieservice_daemon"
CONFIG_IN_CONTAINER = f"{MINDIE_SERVICE_DIR}/conf/config.json"
FILE_MODE = "0640"  # MindIE refuses config files readable by others
MANAGEMENT_PORT = 1026
METRICS_PORT = 1027
MULTI_NODES_INFER_PORT = 1120
INTER_COMM_PORT = 1121
MAX_LINK_NUM = 300  # default 1000; the docs recommend 300

# The CANN / ATB / MindIE environment scripts, sourced where the image has them (their paths
# moved between releases: llm_model became atb-models); they use bash's BASH_SOURCE.
SET_ENV_SCRIPTS = (
    "/usr/local/Ascend/ascend-toolkit/set_env.sh",
    "/usr/local/Ascend/nnal/atb/set_env.sh",
    "/usr/local/Ascend/atb-models/set_env.sh",
    "/usr/local/Ascend/llm_model/set_env.sh",
    "/usr/local/Ascend/mindie/set_env.sh",
)
# HCCL and ATB settings of the vendor's DeepSeek guides and GPUStack's defaults.
HCCL_ENV = {
    "ATB_LLM_HCCL_ENABLE": "1",
    "ATB_LLM_COMM_BACKEND": "hccl",
    "HCCL_CONNECT_TIMEOUT": "7200",
    "HCCL_EXEC_TIMEOUT": "0",
    "HCCL_OP_EXPANSION_MODE": "AIV",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
}


def state_dir(ctx: LaunchContext) -> str:
    return f"{NODE_STATE_DIR}/{ctx.group}"


def rank_table_path(ctx: LaunchContext) -> str:
    return f"{state_dir(ctx)}/rank_table_file.json"


def config_path(ctx: LaunchContext) -> str:
    return f"{state_dir(ctx)}/mindie-config.json"


def _device_ips(node: NodeTarget) -> list[str]:
    if len(node.npu_device_ips) < node.device_count:
        raise EngineBuildError(
            f"{node.name}: {node.device_count} NPUs but {len(node.npu_device_ips)} NPU device "
            "IPs; multi-node MindIE needs every NPU's parameter-plane address in the rank table",
            "npu_device_ips",
        )
    return node.npu_device_ips[: node.device_count]


def rank_table(ctx: LaunchContext) -> dict[str, Any]:
    """rank_table_file.json, format 1.0 (Atlas 800I A2): every value a string."""
    servers = []
    rank = 0
    for node in ctx.nodes:
        devices = []
        for index, device_ip in enumerate(_device_ips(node)):
            devices.append({"device_id": str(index), "device_ip": device_ip, "rank_id": str(rank)})
            rank += 1
        servers.append({"server_id": node.address, "container_ip": node.address, "device": devices})
    return {
        "version": "1.0",
        "server_count": str(len(ctx.nodes)),
        "status": "completed",
        "server_list": servers,
    }


def service_config(ctx: LaunchContext, node: NodeTarget) -> dict[str, Any]:
    """MindIE Service config.json for one node; the stock file's layout with the plan's values.

    With multiNodesInferEnabled, MindIE takes device ids and world size from the rank table and
    ignores npuDeviceIds/worldSize here (mindie_llm0004); they stay consistent all the same.
    """
    sizing = ctx.sizing
    length = sizing.max_model_len
    npus = node.device_count
    return {
        "Version": "1.0.0",
        "LogConfig": {
            "logLevel": "Info",
            "logFileSize": 20,
            "logFileNum": 20,
            "logPath": "logs/mindie-server.log",
        },
        "ServerConfig": {
            "ipAddress": node.address,
            "managementIpAddress": "127.0.0.2",
            "port": ctx.listen_port,
            "managementPort": MANAGEMENT_PORT,
            "metricsPort": METRICS_PORT,
            "allowAllZeroIpListening": False,
            "maxLinkNum": MAX_LINK_NUM,
            "httpsEnabled": False,
            "fullTextEnabled": False,
            "tlsCaPath": "security/ca/",
            "tlsCaFile": ["ca.pem"],
            "tlsCert": "security/certs/server.pem",
            "tlsPk": "security/keys/server.key.pem",
            "tlsPkPwd": "security/pass/key_pwd.txt",
            "tlsCrlPath": "security/certs/",
            "tlsCrlFiles": ["server_crl.pem"],
            "managementTlsCaFile": ["management_ca.pem"],
            "managementTlsCert": "security/certs/management/server.pem",
            "managementTlsPk": "security/keys/management/server.key.pem",
            "managementTlsPkPwd": "security/pass/management/key_pwd.txt",
            "managementTlsCrlPath": "security/management/certs/",
            "managementTlsCrlFiles": ["server_crl.pem"],
            "kmcKsfMaster": "tools/pmt/master/ksfa",
            "kmcKsfStandby": "tools/pmt/standby/ksfb",
            "inferMode": "standard",
            "interCommTLSEnabled": False,
            "interCommPort": INTER_COMM_PORT,
            "interCommTlsCaPath": "security/grpc/ca/",
            "interCommTlsCaFiles": ["ca.pem"],
            "interCommTlsCert": "security/grpc/certs/server.pem",
            "interCommPk": "security/grpc/keys/server.key.pem",
            "interCommPkPwd": "security/grpc/pass/key_pwd.txt",
            "interCommTlsCrlPath": "security/grpc/certs/",
            "interCommTlsCrlFiles": ["server_crl.pem"],
            "openAiSupport": "vllm",
            "tokenTimeout": 3600,
            "e2eTimeout": 3600,
        },
        "BackendConfig": {
            "backendName": "mindieservice_llm_engine",
            "modelInstanceNumber": 1,
            "npuDeviceIds": [list(range(npus))],
            "tokenizerProcessNumber": 8,
            "multiNodesInferEnabled": is_multi_node(ctx),
            "multiNodesInferPort": MULTI_NODES_INFER_PORT,
            "interNodeTLSEnabled": ctx.npu_tls,
            "interNodeTlsCaPath": "security/grpc/ca/",
            "interNodeTlsCaFiles": ["ca.pem"],
            "interNodeTlsCert": "security/grpc/certs/server.pem",
            "interNodeTlsPk": "security/grpc/keys/server.key.pem",
            "interNodeTlsPkPwd": "security/grpc/pass/mindie_server_key_pwd.txt",
            "interNodeTlsCrlPath": "security/grpc/certs/",
            "interNodeTlsCrlFiles": ["server_crl.pem"],
            "interNodeKmcKsfMaster": "tools/pmt/master/ksfa",
            "interNodeKmcKsfStandby": "tools/pmt/standby/ksfb",
            "ModelDeployConfig": {
                "maxSeqLen": length,
                "maxInputTokenLen": length,
                "truncation": False,
                "ModelConfig": [
                    {
                        "modelInstanceType": "Standard",
                        "modelName": ctx.served_name,
                        "modelWeightPath": ctx.weights_path,
                        "worldSize": npus,
                        "cpuMemSize": 5,
                        "npuMemSize": -1,
                        "backendType": "atb",
                        "trustRemoteCode": False,
                    }
                ],
            },
            "ScheduleConfig": {
                "templateType": "Standard",
                "templateName": "Standard_LLM",
                "cacheBlockSize": 128,
                "maxPrefillBatchSize": 50,
                "maxPrefillTokens": max(8192, length),
                "prefillTimeMsPerReq": 150,
                "prefillPolicyType": 0,
                "decodeTimeMsPerReq": 50,
                "decodePolicyType": 0,
                "maxBatchSize": sizing.max_num_seqs or 200,
                "maxIterTimes": length,
                "maxPreemptCount": 0,
                "supportSelectBatch": False,
                "maxQueueDelayMicroseconds": 5000,
            },
        },
    }


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def daemon_script() -> str:
    """Source the CANN/MindIE environment the image ships, then become the daemon."""
    sources = " ".join(shlex.quote(p) for p in SET_ENV_SCRIPTS)
    return (
        f'for f in {sources}; do if [ -f "$f" ]; then . "$f"; fi; done; '
        f"cd {MINDIE_SERVICE_DIR} && exec {DAEMON}"
    )


def build(ctx: LaunchContext) -> list[NodeLaunch]:
    check_ranks(ctx)
    multi = is_multi_node(ctx)
    table_file = (
        RenderedFile(
            path=rank_table_path(ctx), content=render_json(rank_table(ctx)), mode=FILE_MODE
        )
        if multi
        else None
    )
    launches = []
    for index, node in enumerate(ctx.nodes):
        config = RenderedFile(
            path=config_path(ctx), content=render_json(service_config(ctx, node)), mode=FILE_MODE
        )
        run_args = [*base_run_args(ctx), *npu_run_args(node)]
        run_args += weights_mount(ctx)
        run_args += read_only(config.path, CONFIG_IN_CONTAINER)
        env = {
            "MIES_CONTAINER_IP": node.address,  # the host's address under --network host
            "MIES_CONFIG_JSON_PATH": CONFIG_IN_CONTAINER,
            "NPU_MEMORY_FRACTION": fmt_fraction(ctx.sizing.memory.utilization),
            **HCCL_ENV,
        }
        files = [config]
        if table_file is not None:
            run_args += read_only(table_file.path)
            env["RANKTABLEFILE"] = table_file.path
            files.append(table_file)
        if node.socket_ifname is not None:
            env["HCCL_SOCKET_IFNAME"] = node.socket_ifname
        run_args += ["--entrypoint", "/bin/bash"]
        launches.append(
            NodeLaunch(
                node=node.name,
                address=node.address,
                role=node.role,
                rank=node.rank,
                serves_api=index == 0,
                container=ContainerSpec(
                    name=container_name(ctx, "mindie"),
                    image=ctx.image,
                    run_args=run_args,
                    env=env,
                    command=["-c", daemon_script()],
                ),
                files=files,
            )
        )
    return launches
