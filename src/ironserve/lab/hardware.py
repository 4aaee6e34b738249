"""Lab hardware profiles: what each simulated node has in its PCI slots.

`node_hardware()` returns the JSON document the lab writes to
``/etc/ironserve-sim/hardware.json`` when it creates a node; every simulator in
``ironserve.lab.sim`` reads only that file (plus its own state), so the numbers here are the
single source of the node's identity. Identifiers (UUIDs, serials, GUIDs, MACs) are derived from
the hostname and device index, so a node keeps the same identity across ``lab down``/``lab up``.

Product data (PCI IDs, names as ``lspci`` prints them from bookworm's pci.ids 2023.04.10,
memory sizes, clocks, power limits) comes from the captured outputs in
``shared/reference/outputs`` where one exists; where none does it is stated next to the value.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

# Versions the lab's packages install; packages.py pins the same numbers (one place to bump).
NVIDIA_DRIVER_VERSION = "580.95.05"
NVIDIA_CUDA_VERSION = "13.0"  # what the 580 driver reports as "CUDA Version"
ASCEND_DRIVER_VERSION = "24.1.rc3"
ASCEND_FIRMWARE_VERSION = "7.5.0.3.220"
VASTAI_DRIVER_VERSION = "3.3.0"  # no public version string was found; placeholder

JSON = dict[str, Any]


@dataclass(frozen=True)
class GpuModel:
    name: str
    memory_mib: int
    pci_device: str  # lower-case hex, as lspci -nn prints it
    lspci_name: str  # bookworm pci.ids name; "" when pci.ids has none (lspci prints "Device xxxx")
    subsystem: str  # nvidia-smi "Sub System Id"
    architecture: str
    compute_cap: str
    pcie_gen: int
    nvlinks: int
    nvlink_speed: str  # per-link GB/s as `nvidia-smi nvlink -s` prints it
    power_limit_w: float
    power_min_w: float
    idle_power_w: float
    clocks: tuple[int, int, int, int]  # max graphics, max sm, memory, max video (MHz)
    idle_clocks: tuple[int, int, int, int]  # current graphics, sm, memory, video
    vbios: str
    board_part: str
    gpu_part: str
    inforom: tuple[str, str, str]  # image, OEM object, ECC object
    bar1_mib: int
    reserved_mib: int
    remap_banks: int  # "Bank Remap Availability Histogram / Max" on a healthy GPU
    temp_limits: tuple[int, int, int, int]  # shutdown, slowdown, max gpu, max memory (C)


H100_SXM = GpuModel(
    name="NVIDIA H100 80GB HBM3",
    memory_mib=81559,
    pci_device="2330",
    lspci_name="GH100[H100 SXM5 80GB]",
    subsystem="0x16C110DE",
    architecture="Hopper",
    compute_cap="9.0",
    pcie_gen=5,
    nvlinks=18,
    nvlink_speed="26.562",
    power_limit_w=700.0,
    power_min_w=200.0,
    idle_power_w=70.0,
    clocks=(1980, 1980, 2619, 1545),
    idle_clocks=(345, 345, 2619, 765),
    vbios="96.00.74.00.0D",
    board_part="692-2G520-0200-000",
    gpu_part="2330-885-A1",
    inforom=("G520.0200.00.05", "2.1", "7.16"),
    bar1_mib=131072,
    reserved_mib=551,
    remap_banks=2560,
    temp_limits=(92, 89, 87, 95),
)

A100_SXM_40 = GpuModel(
    name="NVIDIA A100-SXM4-40GB",
    memory_mib=40960,
    pci_device="20b0",
    lspci_name="GA100 [A100 SXM4 40GB]",
    subsystem="0x134F10DE",
    architecture="Ampere",
    compute_cap="8.0",
    pcie_gen=4,
    nvlinks=12,
    nvlink_speed="25",
    power_limit_w=400.0,
    power_min_w=100.0,
    idle_power_w=55.0,
    clocks=(1410, 1410, 1215, 1290),
    idle_clocks=(210, 210, 1215, 585),
    vbios="92.00.45.00.03",
    board_part="692-2G506-0200-002",
    gpu_part="20B0-884-A1",
    inforom=("G506.0200.00.04", "2.0", "6.16"),
    bar1_mib=65536,
    reserved_mib=442,
    remap_banks=640,
    temp_limits=(92, 89, 85, 95),
)

L40S = GpuModel(
    name="NVIDIA L40S",
    memory_mib=46068,
    pci_device="26b9",
    lspci_name="",  # not in bookworm's pci.ids
    subsystem="0x185110DE",
    architecture="Ada Lovelace",
    compute_cap="8.9",
    pcie_gen=4,
    nvlinks=0,
    nvlink_speed="",
    power_limit_w=350.0,
    power_min_w=100.0,
    idle_power_w=33.0,
    clocks=(2520, 2520, 9001, 1965),
    idle_clocks=(210, 210, 405, 765),
    vbios="95.02.66.00.02",
    board_part="900-2G133-0080-000",
    gpu_part="26B9-896-A1",
    inforom=("G133.0242.00.03", "2.1", "6.16"),
    bar1_mib=65536,
    reserved_mib=583,
    remap_banks=192,
    temp_limits=(94, 91, 87, 0),
)


@dataclass(frozen=True)
class HcaModel:
    ca_type: str  # ibstat "CA type"
    pci_device: str
    lspci_name: str
    vendor_part_id: int
    firmware: str
    rate: int  # Gb/s
    rate_text: str  # ibstatus / sysfs: "400 Gb/sec (4X NDR)"
    board_id: str


CONNECTX7_NDR = HcaModel(
    ca_type="MT4129",
    pci_device="1021",
    lspci_name="MT2910 Family [ConnectX-7]",
    vendor_part_id=4129,
    firmware="28.41.1000",
    rate=400,
    rate_text="400 Gb/sec (4X NDR)",
    board_id="MT_0000000838",
)

CONNECTX6_HDR = HcaModel(
    ca_type="MT4123",
    pci_device="101b",
    lspci_name="MT28908 Family [ConnectX-6]",
    vendor_part_id=4123,
    firmware="20.31.1014",
    rate=200,
    rate_text="200 Gb/sec (4X HDR)",
    board_id="MT_0000000223",
)

# The lab's own GPU (catalog: lab-gpu-512m): an L40S-shaped PCIe board reporting a 512 MiB
# framebuffer, so that the lab's real 135M model must span nodes (profile labgpu).
LAB_GPU = dataclasses.replace(L40S, name="ironserve lab GPU", memory_mib=512, reserved_mib=16)


@dataclass(frozen=True)
class NvidiaBoard:
    gpu: GpuModel
    gpu_slots: tuple[int, ...]  # PCI bus numbers, in nvidia-smi enumeration order
    nvswitch_slots: tuple[int, ...]
    nvswitch_device: str
    nvswitch_lspci_name: str
    hca: HcaModel | None
    hca_slots: tuple[int, ...]
    numa_cpus: tuple[str, str]  # CPU affinity of NUMA node 0 and 1


BOARDS: dict[str, NvidiaBoard] = {
    # One lab GPU per node: the real vLLM (CPU build) runs one rank per node.
    "labgpu": NvidiaBoard(
        gpu=LAB_GPU,
        gpu_slots=(0x01,),
        nvswitch_slots=(),
        nvswitch_device="",
        nvswitch_lspci_name="",
        hca=None,
        hca_slots=(),
        numa_cpus=("0-15", "16-31"),
    ),
    # HGX H100 8-GPU: bus numbers as in the 8x H100 default-table fixture (nvidia.md 3a).
    "h100x8": NvidiaBoard(
        gpu=H100_SXM,
        gpu_slots=(0x19, 0x3B, 0x4C, 0x5D, 0x9B, 0xBB, 0xCB, 0xDB),
        nvswitch_slots=(0x05, 0x06, 0x07, 0x08),
        nvswitch_device="22a3",
        nvswitch_lspci_name="",
        hca=CONNECTX7_NDR,
        hca_slots=(0x18, 0x3A, 0x4B, 0x5C, 0x9A, 0xBA, 0xCA, 0xDA),
        numa_cpus=("0-47,96-143", "48-95,144-191"),
    ),
    # DGX A100-style board: 6 NVSwitches, 4 HDR HCAs (one per GPU pair).
    "a100-40gx8": NvidiaBoard(
        gpu=A100_SXM_40,
        gpu_slots=(0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD),
        nvswitch_slots=(0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9),
        nvswitch_device="1af1",
        nvswitch_lspci_name="GA100 [A100 NVSwitch]",
        hca=CONNECTX6_HDR,
        hca_slots=(0x0C, 0x4C, 0x8C, 0xBC),
        numa_cpus=("0-63,128-191", "64-127,192-255"),
    ),
    "gpu2": NvidiaBoard(
        gpu=L40S,
        gpu_slots=(0x01, 0x81),
        nvswitch_slots=(),
        nvswitch_device="",
        nvswitch_lspci_name="",
        hca=None,
        hca_slots=(),
        numa_cpus=("0-15", "16-31"),
    ),
}

# Ascend Atlas 800I A2: bus numbers in npu-smi order as in ascend.md 1a (8x 910B2, 64 GB).
ASCEND_SLOTS = (0xC1, 0x01, 0xC2, 0x02, 0x81, 0x41, 0x82, 0x42)
ASCEND_CHIP = "910B2"
ASCEND_HBM_MB = 65536
ASCEND_PCI_DEVICE = "d802"  # not in bookworm's pci.ids: lspci prints "Device d802"

# Vastai VA16: 8 cards x 4 dies. The catalog's PCI vendor id is 1ec6; the device id 0100 is the
# one the vendor README filters on (`lspci -d:0100`). One PCI function per die is an assumption
# (no public lspci listing exists), as is the bus layout.
VASTAI_CARDS = 8
VASTAI_DIES_PER_CARD = 4
VASTAI_VENDOR = "1ec6"
VASTAI_DEVICE = "0100"
VASTAI_DIE_MEMORY_MIB = 32768

# profile -> the node kind of each node index (the last entry repeats for further nodes).
PROFILES: dict[str, tuple[str, ...]] = {
    "h100x8": ("h100x8",),
    "a100-40gx8": ("a100-40gx8",),
    "ascend910bx8": ("ascend910bx8",),
    "va16": ("va16",),
    "va16-iommu": ("va16-iommu",),
    "gpu2": ("gpu2",),
    "labgpu": ("labgpu",),
    "mixed": ("h100x8", "a100-40gx8"),
}

# node kind -> (ironserve catalog accelerator id, physical devices per node)
ACCELERATOR_OF_KIND: dict[str, tuple[str, int]] = {
    "h100x8": ("h100-80g", 8),
    "a100-40gx8": ("a100-40g", 8),
    "ascend910bx8": ("ascend-910b-64g", 8),
    "va16": ("va16-128g", VASTAI_CARDS),
    "va16-iommu": ("va16-128g", VASTAI_CARDS),
    "gpu2": ("l40s-48g", 2),
    "labgpu": ("lab-gpu-512m", 1),
}

# profile -> accelerator of its first node (mixed profiles: use node_kind() per node).
ACCELERATOR_OF_PROFILE: dict[str, tuple[str, int]] = {
    p: ACCELERATOR_OF_KIND[kinds[0]] for p, kinds in PROFILES.items()
}


def node_kind(profile: str, index: int) -> str:
    kinds = PROFILES[profile]
    return kinds[min(index, len(kinds) - 1)]


def accelerator_of(profile: str, index: int) -> tuple[str, int]:
    """Catalog accelerator id and device count of node `index` of `profile`."""
    return ACCELERATOR_OF_KIND[node_kind(profile, index)]


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()


def _uuid(hostname: str, kind: str, index: int) -> str:
    h = _digest("uuid", hostname, kind, index).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _serial(hostname: str, index: int) -> str:
    # nvidia-smi board serials are 13 decimal digits starting with 16 (fixtures 3j, 4a).
    n = int.from_bytes(_digest("serial", hostname, index)[:8], "big") % 10**11
    return f"16{n:011d}"


def _guid(hostname: str, kind: str, index: int) -> str:
    # Mellanox OUI-prefixed EUI-64, as in the ibstat fixtures (0x58a2e10300......).
    tail = _digest("guid", hostname, kind, index)[:3].hex()
    return f"0x58a2e10300{tail}"


def _mac(hostname: str, index: int) -> str:
    b = _digest("mac", hostname, index)[:3]
    return "a8:49:4d:" + ":".join(f"{x:02x}" for x in b)


def _bus_id(bus: int) -> str:
    return f"00000000:{bus:02X}:00.0"


def _pci(
    bus: int,
    class_code: str,
    class_name: str,
    vendor: str,
    vendor_name: str,
    device: str,
    device_name: str,
    rev: str,
) -> JSON:
    return {
        "slot": f"0000:{bus:02x}:00.0",
        "class_code": class_code,
        "class_name": class_name,
        "vendor_id": vendor,
        "vendor_name": vendor_name,
        "device_id": device,
        "device_name": device_name,
        "rev": rev,
    }


def _nvidia_node(kind: str, hostname: str) -> JSON:
    board = BOARDS[kind]
    g = board.gpu
    devices: list[JSON] = []
    pci: list[JSON] = []
    for i, bus in enumerate(board.gpu_slots):
        numa = 0 if i < len(board.gpu_slots) // 2 or len(board.gpu_slots) == 1 else 1
        devices.append(
            {
                "index": i,
                "name": g.name,
                "uuid": "GPU-" + _uuid(hostname, "gpu", i),
                "pci_bus_id": _bus_id(bus),
                "pci_bus": bus,
                "pci_device_id": f"0x{g.pci_device.upper()}10DE",
                "pci_sub_system_id": g.subsystem,
                "serial": _serial(hostname, i),
                "memory_mib": g.memory_mib,
                "reserved_mib": g.reserved_mib,
                "bar1_mib": g.bar1_mib,
                "architecture": g.architecture,
                "compute_cap": g.compute_cap,
                "pcie_gen": g.pcie_gen,
                "pcie_width": 16,
                "nvlinks": g.nvlinks,
                "nvlink_speed": g.nvlink_speed,
                "power_limit_w": g.power_limit_w,
                "power_min_w": g.power_min_w,
                "power_draw_w": g.idle_power_w + (i * 7 % 5),
                "temperature_c": 27 + (i * 5 % 7),
                "memory_temperature_c": 36 + (i * 3 % 5),
                "clocks_max": list(g.clocks),
                "clocks_idle": list(g.idle_clocks),
                "vbios": g.vbios,
                "board_part": g.board_part,
                "gpu_part": g.gpu_part,
                "inforom": list(g.inforom),
                "minor_number": i,
                "module_id": i + 1,
                "board_id": f"0x{bus:02x}00",
                "remap_banks": g.remap_banks,
                "temp_limits": list(g.temp_limits),
                "numa_node": numa,
                "cpu_affinity": board.numa_cpus[numa],
            }
        )
        pci.append(
            _pci(
                bus,
                "0302",
                "3D controller",
                "10de",
                "NVIDIA Corporation",
                g.pci_device,
                g.lspci_name,
                "a1",
            )
        )
    nvswitches = []
    for i, bus in enumerate(board.nvswitch_slots):
        nvswitches.append({"index": i, "pci_bus_id": f"0000:{bus:02x}:00.0"})
        pci.append(
            _pci(
                bus,
                "0680",
                "Bridge",
                "10de",
                "NVIDIA Corporation",
                board.nvswitch_device,
                board.nvswitch_lspci_name,
                "a1",
            )
        )
    hcas = []
    if board.hca is not None:
        h = board.hca
        for i, bus in enumerate(board.hca_slots):
            guid = _guid(hostname, "hca", i)
            hcas.append(
                {
                    "name": f"mlx5_{i}",
                    "ca_type": h.ca_type,
                    "firmware": h.firmware,
                    "hw_version": "0",
                    "node_guid": guid,
                    "system_image_guid": guid,
                    "vendor_id": "0x02c9",
                    "vendor_part_id": h.vendor_part_id,
                    "board_id": h.board_id,
                    "pci_slot": f"0000:{bus:02x}:00.0",
                    "numa_node": 0 if i < len(board.hca_slots) // 2 else 1,
                    "ports": [
                        {
                            "port": 1,
                            "state": "Active",
                            "physical_state": "LinkUp",
                            "rate": h.rate,
                            "rate_text": h.rate_text,
                            "base_lid": 100 + 37 * i + (_digest(hostname)[0] % 32),
                            "lmc": 0,
                            "sm_lid": 1,
                            "capability_mask": "0xa751e848",
                            "port_guid": guid,
                            "link_layer": "InfiniBand",
                            "max_mtu": 4096,
                            "active_mtu": 4096,
                        }
                    ],
                }
            )
            pci.append(
                _pci(
                    bus,
                    "0207",
                    "Infiniband controller",
                    "15b3",
                    "Mellanox Technologies",
                    h.pci_device,
                    h.lspci_name,
                    "00",
                )
            )
    # The GPU that an IB HCA hangs off (same PCIe switch), for `nvidia-smi topo -m` PIX cells.
    return {
        "vendor": "nvidia",
        "devices": devices,
        "nvswitches": nvswitches,
        "hcas": hcas,
        "npu_ports": [],
        "pci_devices": sorted(pci, key=lambda d: str(d["slot"])),
        "versions": {
            "nvidia_driver": NVIDIA_DRIVER_VERSION,
            "cuda": NVIDIA_CUDA_VERSION,
        },
    }


def _ascend_node(hostname: str) -> JSON:
    devices = []
    ports = []
    pci = []
    for i, bus in enumerate(ASCEND_SLOTS):
        devices.append(
            {
                "index": i,
                "name": ASCEND_CHIP,
                "chip": 0,
                "pci_bus_id": f"0000:{bus:02X}:00.0",
                "pci_bus": bus,
                "hbm_mb": ASCEND_HBM_MB,
                "hbm_used_mb": 3347 + (i % 3),
                "power_w": 92.0 + (i * 13 % 7),
                "temperature_c": 35 + (i * 3 % 5),
                "aicore_count": 24,
            }
        )
        ports.append(
            {"device": i, "iface": f"eth{i}", "speed_mbps": 200000, "mac": _mac(hostname, i)}
        )
        pci.append(
            _pci(
                bus,
                "1200",
                "Processing accelerators",
                "19e5",
                "Huawei Technologies Co., Ltd.",
                ASCEND_PCI_DEVICE,
                "",
                "20",
            )
        )
    return {
        "vendor": "ascend",  # the catalog's vendor name (catalog/accelerators.py)
        "devices": devices,
        "nvswitches": [],
        "hcas": [],
        "npu_ports": ports,
        "pci_devices": sorted(pci, key=lambda d: str(d["slot"])),
        "versions": {
            "ascend_driver": ASCEND_DRIVER_VERSION,
            "ascend_firmware": ASCEND_FIRMWARE_VERSION,
        },
    }


def _vastai_node(hostname: str) -> JSON:
    devices = []
    pci = []
    for card in range(VASTAI_CARDS):
        for die in range(VASTAI_DIES_PER_CARD):
            n = card * VASTAI_DIES_PER_CARD + die
            bus = 0x1B + card * 0x10 + die
            devices.append(
                {
                    "index": n,
                    "card": card,
                    "die": die,
                    "name": "VA16",
                    "pci_bus_id": f"0000:{bus:02x}:00.0",
                    "pci_bus": bus,
                    "memory_mib": VASTAI_DIE_MEMORY_MIB,
                    "serial": _serial(hostname, card),
                    "temperature_c": 40 + (n % 6),
                }
            )
            pci.append(
                _pci(
                    bus,
                    "1200",
                    "Processing accelerators",
                    VASTAI_VENDOR,
                    "",
                    VASTAI_DEVICE,
                    "",
                    "01",
                )
            )
    return {
        "vendor": "vastai",
        "devices": devices,
        "nvswitches": [],
        "hcas": [],
        "npu_ports": [],
        "pci_devices": sorted(pci, key=lambda d: str(d["slot"])),
        "versions": {"vastai_driver": VASTAI_DRIVER_VERSION},
    }


def node_hardware(profile: str, index: int, hostname: str) -> JSON:
    """The hardware description of node `index` of `profile`, JSON-able."""
    if profile not in PROFILES:
        raise ValueError(f"unknown lab profile {profile!r}; known: {', '.join(sorted(PROFILES))}")
    kind = node_kind(profile, index)
    if kind in BOARDS:
        data = _nvidia_node(kind, hostname)
    elif kind == "ascend910bx8":
        data = _ascend_node(hostname)
    else:
        data = _vastai_node(hostname)
    accel, count = ACCELERATOR_OF_KIND[kind]
    return {
        "schema": 1,
        "profile": profile,
        "kind": kind,
        "index": index,
        "hostname": hostname,
        "accelerator": accel,
        "accelerator_count": count,
        "iommu_enabled": kind == "va16-iommu",
        **data,
    }
