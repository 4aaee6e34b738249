"""What every Ascend engine container needs from its node: the NPUs, the driver's control
devices and the host's driver and tools, read-only (the MindIE and vLLM-Ascend container guides
run their images with the same devices and mounts)."""

from __future__ import annotations

from ironserve.engines.base import NodeTarget

# The host's driver and tools, read-only.
HOST_MOUNTS = (
    "/usr/local/dcmi",
    "/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
    "/etc/hccn.conf",
)
CONTROL_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")


def read_only(path: str, target: str | None = None) -> list[str]:
    return ["-v", f"{path}:{target or path}:ro"]


def npu_run_args(node: NodeTarget) -> list[str]:
    """Every NPU of the node (``/dev/davinci<i>``), the control devices, the driver mounts."""
    args: list[str] = []
    for device in range(node.device_count):
        args += ["--device", f"/dev/davinci{device}"]
    for device_path in CONTROL_DEVICES:
        args += ["--device", device_path]
    for mount in HOST_MOUNTS:
        args += read_only(mount)
    return args


def visible_devices(node: NodeTarget) -> str:
    """ASCEND_RT_VISIBLE_DEVICES: the node's NPUs as the runtime numbers them."""
    return ",".join(str(i) for i in range(node.device_count))
