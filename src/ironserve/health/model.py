"""Result model of a health check, the verdict order and the exit codes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

# preflight|node|cluster|serving|all (all = node + cluster + serving)
TIERS = ("preflight", "node", "cluster", "serving", "all")


class Status(str, Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"  # tool missing or timed out: never reported as OK


# Worst wins. FAIL > UNKNOWN > WARN > OK: a check that could not run is worse than a warning,
# because it may hide a failure, but it is not a proven failure.
_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.UNKNOWN: 2, Status.FAIL: 3}
EXIT_CODES = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.UNKNOWN: 3}

# Runbook ids (ironserve/runbooks/data/<id>.md) named by checks, with their meaning.
RUNBOOKS: dict[str, str] = {
    "node-down": "node does not answer SSH: check power, network, sshd; then reboot",
    "gpu-missing": "fewer GPUs visible than the Plan expects: reset device, reboot, hardware",
    "gpu-xid": "XID events in the kernel log (79 = fell off the bus): reset GPU, reboot, RMA",
    "gpu-ecc": "uncorrectable ECC errors: drain node, reset GPU, RMA if it persists",
    "gpu-row-remap": "row remapping pending: reset the GPU (or reboot) to apply the remap",
    "gpu-driver": "nvidia-smi does not answer: reload driver / reboot",
    # cluster and serving tiers (health/cluster_tier.py, health/serving_tier.py)
    "engine-container": "an engine container is stopped or restarting: restart the group",
    "ray-nodes": "Ray lacks planned nodes or GPUs: restart the group, check the socket ifname",
    "weights-corrupt": "weights missing or changed since verified: pull again, then restart",
    "npu-link": "an NPU peer does not answer hccn_tool -ping: links, cables, switch ports",
    "endpoint-down": "the OpenAI endpoint does not answer /health, models or a completion",
    "kv-cache-full": "KV cache nearly full, requests queueing: fewer seqs or another group",
    "first-deploy": "the serving group is not deployed yet: deploys/site.py",
    "change-model": "the endpoint serves another model than the Plan's: deploys/serve.py",
    "container-runtime": "docker missing or misconfigured on the node: deploys/provision.py",
    # Dynamo groups (health/dynamo_checks.py)
    "dynamo-decode-lost": "a Dynamo decode worker stopped, silent or unregistered: restart",
    "dynamo-prefill-lost": "a Dynamo prefill worker stopped, silent or unregistered: restart",
    "dynamo-control-plane": "Dynamo's etcd or NATS down: workers cannot keep their leases",
    "dynamo-kv-transfer": "prefill -> decode KV handover fails (NIXL/UCX, a hung decode side)",
    # node tier (health/nvidia_checks.py, host_checks.py, ascend_checks.py)
    "upgrade-driver": "driver not the planned branch or too old for CUDA: deploys/provision.py",
    "fabric-manager": "NVSwitch board without a trained fabric: restart nvidia-fabricmanager",
    "ib-port": "IB/RoCE port not ACTIVE or below its rate: cable, optics, switch port, SM",
    "disk-full": "no room for the weights on the weights filesystem: free space",
    "host-limits": "/dev/shm, memlock or time sync below what the site needs",
    "npu-alarm": "npu-smi health is not OK: read the alarm, reset the NPU, reboot, RMA",
    "npu-tls": "HCCL TLS switch differs from the group's npu_tls: hccn_tool -tls -s",
    "vastai-devices": "Vastai dies missing or IOMMU on: driver, kernel command line, reboot",
}


@dataclass(frozen=True)
class CheckResult:
    check: str
    tier: str
    node: str
    status: Status
    observed: str
    expected: str
    action: str = ""
    runbook: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)


def exit_code(results: list[CheckResult]) -> int:
    return EXIT_CODES[worst([r.status for r in results])]
