"""Canned command outputs of an HGX H100 node (8 GPUs, 4 NVSwitches, 8 ConnectX-7), bare or
provisioned, for roles/* on ``@fake`` hosts. Matchers are substrings, tried in order."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from typing import Any

from ironserve.facts.nvidia import NVIDIA_GPU_FIELDS
from ironserve.operations.docker import render_daemon_json
from ironserve.operations.templates import render

NODE_IP = "10.10.0.11"
APT_SOURCE = "deb [trusted=yes] http://apt.lab/ ./"
DRIVER = "580.95.05-0ubuntu0.24.04.1"

HOST_DATA: dict[str, Any] = {
    "node_role": "head",
    "node_ip": NODE_IP,
    "accelerator_kind": "h100-80g",
    "accelerator_count": 8,
    "engine_kind": "vllm",
    "model_id": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "model_max_len": 8192,
    "network_socket_ifname": "eth0",
    "nvidia_apt_source": APT_SOURCE,
    "nvidia_driver_reboot": False,
    "base_sysctl_apply": False,
    "base_time_sync": None,
    "fake_delay": 0,
    "fake_delay_jitter": 0,
}

NOCMD = "##PYINFRA_NOCMD##"  # what a fact's command wrapper prints when the tool is missing
_GPU_SLOTS = [0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB]


def pci_lines(gpus: int = 8) -> list[str]:
    lines = [
        f'0000:{bus:02x}:00.0 "3D controller [0302]" "NVIDIA Corporation [10de]" '
        f'"GH100 [H100 SXM5 80GB] [2330]" -ra1 "NVIDIA Corporation [10de]" "Device [16c1]"'
        for bus in _GPU_SLOTS[:gpus]
    ]
    lines += nvswitch_lines()
    lines += [
        f'0000:{bus:02x}:00.0 "Infiniband controller [0207]" "Mellanox Technologies [15b3]" '
        f'"MT2910 Family [ConnectX-7] [1021]" "Mellanox Technologies [15b3]" "Device [0023]"'
        for bus in range(0x1A, 0x22)
    ]
    return lines


def nvswitch_lines() -> list[str]:
    return [
        f'0000:{bus:02x}:00.0 "Bridge [0680]" "NVIDIA Corporation [10de]" "Device [22a3]" -ra1 '
        f'"NVIDIA Corporation [10de]" "Device [1796]"'
        for bus in (5, 6, 7, 8)
    ]


def ip_addr(address: str = NODE_IP, ifname: str = "eth0") -> str:
    return json.dumps(
        [
            {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
            {"ifname": ifname, "addr_info": [{"family": "inet", "local": address}]},
        ]
    )


def df(mount: str, available: int) -> list[str]:
    return [
        "Filesystem 1-blocks Used Available Capacity Mounted on",
        f"/dev/sda1 {available * 2} {available} {available} 50% {mount}",
    ]


OS_RELEASE = [
    "/etc/os-release",
    'PRETTY_NAME="Ubuntu 24.04.1 LTS"',
    'NAME="Ubuntu"',
    'VERSION_ID="24.04"',
    "ID=ubuntu",
    "ID_LIKE=debian",
    "VERSION_CODENAME=noble",
    "---",
]


def selections(provisioned: bool) -> list[str]:
    base = [
        ("ca-certificates", "20240203"),
        ("curl", "8.5.0-2ubuntu10"),
        ("gnupg", "2.4.4-2ubuntu17"),
        ("iproute2", "6.1.0-1ubuntu6"),
        ("kmod", "31+20240202-2ubuntu7"),
        ("pciutils", "1:3.10.0-2build1"),
        ("procps", "2:4.0.4-4ubuntu3"),
        ("docker.io", "26.1.3-0ubuntu1"),
    ]
    rows = [f"{name}\t{version}\tii \tinstall" for name, version in base]
    if provisioned:
        held = [
            ("nvidia-driver-580-server-open", DRIVER),
            ("nvidia-utils-580-server", DRIVER),
            ("nvidia-fabricmanager-580", "580.95.05-1"),
        ]
        rows += [f"{name}\t{version}\thi \thold" for name, version in held]
        rows += [
            f"{name}\t{version}\tii \tinstall"
            for name, version in (
                ("cuda-toolkit-12-8", "12.8.1-1"),
                ("datacenter-gpu-manager-4-cuda12", "1:4.4.2-1"),
                ("nvidia-container-toolkit", "1.17.8-1"),
                ("rdma-core", "44.0-2"),
                ("infiniband-diags", "44.0-2"),
                ("ibverbs-utils", "44.0-2"),
                ("nftables", "1.0.9-1build1"),
            )
        ]
    return rows


def gpu_rows(persistence: bool = True) -> list[str]:
    rows = [", ".join(NVIDIA_GPU_FIELDS)]
    for i, bus in enumerate(_GPU_SLOTS):
        pm = "Enabled" if persistence else "Disabled"
        rows.append(
            f"{i}, NVIDIA H100 80GB HBM3, GPU-{i:08d}, 00000000:{bus:02X}:00.0, 81559, "
            f"580.95.05, {pm}, 0, No, No, 0, 16, 16, 0x0000000000000001, Completed"
        )
    return rows


def ibstat(state: str = "Active") -> list[str]:
    out = []
    for i in range(8):
        out += [
            f"CA 'mlx5_{i}'",
            "\tCA type: MT4129",
            "\tNumber of ports: 1",
            "\tFirmware version: 28.39.1002",
            "\tPort 1:",
            f"\t\tState: {state}",
            "\t\tPhysical state: LinkUp",
            "\t\tRate: 400",
            "\t\tBase lid: 1",
            "\t\tSM lid: 1",
            "\t\tPort GUID: 0x946dae0300cde72c",
            "\t\tLink layer: InfiniBand",
        ]
    return out


def provisioned_daemon_json() -> dict[str, Any]:
    return {
        "default-runtime": "nvidia",
        "default-shm-size": "1G",
        "default-ulimits": {"memlock": {"Hard": -1, "Name": "memlock", "Soft": -1}},
        "log-driver": "json-file",
        "log-opts": {"max-file": "5", "max-size": "100m"},
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
    }


def managed_files() -> dict[str, str]:
    """Every file the roles write on this node, as they render it."""
    from ironserve.roles.base.defaults import DEFAULTS as BASE
    from ironserve.roles.base.deploy import MEMLOCK_FILE, NOUVEAU_FILE, SYSCTL_FILE, sysctl_text
    from ironserve.roles.container_runtime.deploy import DOCKER_DROPIN
    from ironserve.roles.firewall.deploy import UNIT_PATH
    from ironserve.roles.firewall.ruleset import RULESET_PATH, ruleset_text, spec_for, unit_text
    from ironserve.roles.nvidia.deploy import SOURCE_LIST

    # The firewall of this one-node group: itself as the group, SSH on 22, the API open.
    everywhere = ("0.0.0.0/0", "::/0")
    firewall = spec_for(
        "@fake/h100-a",
        "default",
        [NODE_IP],
        ssh=((22,), everywhere),
        api=((8000,), everywhere),
        admin=None,
        monitoring=False,
    )

    return {
        SYSCTL_FILE: sysctl_text(BASE["base_sysctl"]),
        MEMLOCK_FILE: render("base", "memlock.conf"),
        NOUVEAU_FILE: render("base", "blacklist-nouveau.conf"),
        SOURCE_LIST: render(
            "nvidia", "apt-source.list", line=APT_SOURCE, description="NVIDIA packages"
        ),
        DOCKER_DROPIN: render("container_runtime", "docker-limits.conf"),
        RULESET_PATH: ruleset_text(firewall),
        UNIT_PATH: unit_text(),
    }


# Files the roles write with a mode other than 644.
FILE_MODES = {"/etc/ironserve/firewall.nft": "-rw-------"}


def _file_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    stat = "stat -c 'user=%U group=%G mode=%A atime=%X mtime=%Y ctime=%Z size=%s %N'"
    for path, text in managed_files().items():
        digest = hashlib.sha1(StringIO(text).getvalue().encode()).hexdigest()
        out[f"sha1sum {path}"] = f"{digest}  {path}"
        out[f"stat -c 'user=%U group=%G mode=%A atime=%X mtime=%Y ctime=%Z size=%s %N' {path}"] = (
            f"user=root group=root mode={FILE_MODES.get(path, '-rw-r--r--')} atime=0 mtime=0"
            f" ctime=0 size={len(text)} "
            f"'{path}'"
        )
    for folder in sorted({path.rsplit("/", 1)[0] for path in managed_files()}):
        out[f"{stat} {folder} 2>"] = (
            f"user=root group=root mode=drwxr-xr-x atime=0 mtime=0 ctime=0 size=4096 '{folder}'"
        )
    return out


def responses(provisioned: bool, **overrides: Any) -> dict[str, Any]:
    """fake_responses of the node: bare (before provisioning) or provisioned."""
    units = (
        ["docker.service", "nvidia-fabricmanager.service", "ironserve-firewall.service"]
        if provisioned
        else ["docker.service"]
    )
    out: dict[str, Any] = {
        "nvidia-nvswitch": ["## proc", "## lspci", *nvswitch_lines()],
        "lspci -Dnnmm": pci_lines(),
        "ip -j addr": ip_addr(),
        "/dev/shm": df("/dev/shm", 64 * 1024**3),
        "df -P -B1": df("/data", 2 * 1024**4),
        "-release": OS_RELEASE,
        "uname -r": "6.8.0-45-generic",
        "uname -m": "x86_64",
        "ulimit -l": "unlimited",
        "timedatectl": "timedatectl: yes",
        "dpkg-query -W": selections(provisioned),
        "docker info --format": (
            '{"nvidia":{"path":"nvidia-container-runtime","args":[]},"runc":{"path":"runc"}}\n'
            + ("nvidia" if provisioned else "runc")
        ),
        "/etc/docker/daemon.json": (
            render_daemon_json(provisioned_daemon_json()).splitlines() if provisioned else []
        ),
        "command -v docker": "/usr/bin/docker",
        "nft list table inet ironserve": "loaded" if provisioned else "absent",
        "SSH_CONNECTION": "",
        "ibstat 2>&1": ibstat() if provisioned else NOCMD,
        "command -v ibstat": "/usr/sbin/ibstat" if provisioned else {"success": True},
        "--query-gpu": gpu_rows() if provisioned else NOCMD,
        "--property SubState": [
            line for unit in units for line in (f"Id={unit}", "SubState=running", "")
        ],
        "--property UnitFileState": [
            line for unit in units for line in (f"Id={unit}", "UnitFileState=enabled", "")
        ],
    }
    if provisioned:
        out.update(_file_responses())
    out.update(overrides)
    return out
