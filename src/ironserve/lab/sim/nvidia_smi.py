"""Simulated `nvidia-smi` for lab nodes (/usr/bin/nvidia-smi from nvidia-utils-580-server).

Formats (see nvidia.md in the reference outputs): default table as driver 590 prints it (3c'),
``-L`` (1a), ``--query-gpu`` (2a-2d), ``-q`` (3j), ``-q -x`` (3k), ``nvlink -s`` (3e),
``topo -m`` (3h/3i, TAB-separated). Exit codes: 9 when the kernel module is not loaded, 6 when
no GPU is visible, 2 on a bad query field, 15 when a GPU is lost (NVML_ERROR_GPU_IS_LOST).
"""

from __future__ import annotations

import os
import sys
import time

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import nvgpu, nvsmi_query, nvsmi_report
from . import state as st

JSON = st.JSON

NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)

_SEP = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"
_WIDE = "+" + "-" * 89 + "+"


def _line(text: str) -> str:
    return f"| {text:<88}|"


def default_table(gpus: list[JSON], driver: str, cuda: str) -> str:
    out = [
        time.strftime("%a %b %e %H:%M:%S %Y") + "       ",
        _WIDE,
        f"| NVIDIA-SMI {driver:<23}Driver Version: {driver:<15}CUDA Version: {cuda:<9}|",
        _SEP,
        "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",  # noqa: E501
        "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",  # noqa: E501
        "|                                         |                        |               MIG M. |",  # noqa: E501
        "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|",
    ]
    for g in gpus:
        pm = "On" if g["persistence"] else "Off"
        mig = "Disabled" if g["nvlinks"] else "N/A"
        power = f"{round(g['power_draw_w'])}W"
        cap = f"{round(g['power_limit_w'])}W"
        mem = f"{g['memory_mib']}MiB"
        out += [
            f"|{g['index']:>4}  {g['name']:<31}{pm:<3} |   {g['pci_bus_id']} Off |"
            f"{g['ecc_uncorrected']:>21} |",
            f"| N/A  {str(g['temperature_c']) + 'C':>4}    P0{power:>16} / {cap:>5} |"
            f"{'0MiB':>11} / {mem:>9} |{'0%':>8}{'Default':>13} |",
            f"|{'':41}|{'':24}|{mig:>21} |",
            _SEP,
        ]
    out += [
        "",
        _WIDE,
        _line("Processes:"),
        _line(" GPU   GI   CI              PID   Type   Process name" + " " * 24 + "GPU Memory"),
        _line("       ID   ID" + " " * 63 + "Usage     "),
        "|" + "=" * 89 + "|",
        _line(" No running processes found"),
        _WIDE,
    ]
    return "\n".join(out) + "\n"


def list_gpus(gpus: list[JSON]) -> str:
    return "".join(f"GPU {g['index']}: {g['name']} (UUID: {g['uuid']})\n" for g in gpus)


def nvlink_status(gpus: list[JSON]) -> str:
    out = []
    for g in gpus:
        out.append(f"GPU {g['index']}: {g['name']} (UUID: {g['uuid']})")
        out += [f"\t Link {n}: {g['nvlink_speed']} GB/s" for n in range(g["nvlinks"])]
    return "\n".join(out) + "\n"


_LEGEND = """
Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks
"""  # noqa: E501


def topo_matrix(gpus: list[JSON], hcas: list[JSON]) -> str:
    n_gpu, n_nic = len(gpus), len(hcas)

    def gpu_of_nic(j: int) -> set[int]:
        # NICs share a PCIe switch with the GPU(s) of the same slot group.
        per = max(1, n_gpu // n_nic) if n_nic else 1
        return {g["index"] for g in gpus if g["index"] // per == j}

    def numa_of_nic(j: int) -> int:
        return int(hcas[j]["numa_node"])

    def rel_gpu(a: JSON, b: JSON) -> str:
        if a["index"] == b["index"]:
            return " X "
        if a["nvlinks"]:
            return f"NV{a['nvlinks']}"
        return "NODE" if a["numa_node"] == b["numa_node"] else "SYS"

    def rel_gpu_nic(g: JSON, j: int) -> str:
        if g["index"] in gpu_of_nic(j):
            return "PIX"
        return "NODE" if g["numa_node"] == numa_of_nic(j) else "SYS"

    def rel_nic(i: int, j: int) -> str:
        if i == j:
            return " X "
        return "NODE" if numa_of_nic(i) == numa_of_nic(j) else "SYS"

    cols = [f"GPU{g['index']}" for g in gpus] + [f"NIC{j}" for j in range(n_nic)]
    head = "\t".join([*cols, "CPU Affinity", "NUMA Affinity", "GPU NUMA ID"])
    lines = [f"\t\x1b[4m{head}\x1b[0m"]
    for g in gpus:
        cells = [rel_gpu(g, h) for h in gpus] + [rel_gpu_nic(g, j) for j in range(n_nic)]
        cells += [g["cpu_affinity"], str(g["numa_node"]), "", "N/A"]
        lines.append("\t".join([f"GPU{g['index']}", *cells]))
    for j in range(n_nic):
        cells = [rel_gpu_nic(g, j) for g in gpus] + [rel_nic(j, k) for k in range(n_nic)]
        lines.append("\t".join([f"NIC{j}", *cells]))
    text = "\n".join(lines) + "\n" + _LEGEND
    if n_nic:
        text += "\nNIC Legend:\n\n" + "".join(
            f"  NIC{j}: {h['name']}\n" for j, h in enumerate(hcas)
        )
    return text


def _select(gpus: list[JSON], ids: str | None) -> list[JSON]:
    if ids is None:
        return gpus
    wanted = [i.strip() for i in ids.split(",")]
    return [
        g
        for g in gpus
        if str(g["index"]) in wanted
        or g["uuid"] in wanted
        or any(g["pci_bus_id"].lower().endswith(w.lower()) for w in wanted if ":" in w)
    ]


def _query(args: list[str], gpus: list[JSON], ctx: JSON) -> int:
    fields: list[str] = []
    fmt = ""
    for i, a in enumerate(args):
        if a.startswith("--query-gpu="):
            fields = [f.strip() for f in a.split("=", 1)[1].split(",") if f.strip()]
        elif a == "--query-gpu" and i + 1 < len(args):
            fields = [f.strip() for f in args[i + 1].split(",") if f.strip()]
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a == "--format" and i + 1 < len(args):
            fmt = args[i + 1]
    for f in fields:
        if nvsmi_query.lookup(f) is None:
            sys.stdout.write(f'Field "{f}" is not a valid field to query.\n\n')
            return 2
    opts = set(fmt.split(","))
    if "csv" not in opts:
        sys.stdout.write('"--format" must be specified with "--query-gpu".\n')
        return 2
    if "noheader" not in opts:
        sys.stdout.write(nvsmi_query.header(fields) + "\n")
    for g in gpus:
        sys.stdout.write(nvsmi_query.row(fields, g, ctx, "nounits" in opts) + "\n")
    return 0


def _persistence(args: list[str], gpus: list[JSON], state: JSON) -> int:
    value = ""
    for i, a in enumerate(args):
        if a in ("-pm", "--persistence-mode") and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith("--persistence-mode="):
            value = a.split("=", 1)[1]
    if value not in ("0", "1", "ENABLED", "DISABLED"):
        sys.stderr.write('Invalid combination of input arguments. Please run "nvidia-smi -h".\n')
        return 2
    on = value in ("1", "ENABLED")
    current = set(state["nvidia"].get("persistence", []))
    for g in gpus:
        (current.add if on else current.discard)(g["pci_bus_id"])
        print(f"{'Enabled' if on else 'Disabled'} persistence mode for GPU {g['pci_bus_id']}.")
    state["nvidia"]["persistence"] = sorted(current)
    st.save_state(state)
    print("All done.")
    return 0


def _option(args: list[str], *names: str) -> str | None:
    for i, a in enumerate(args):
        if a in names and i + 1 < len(args):
            return args[i + 1]
        for n in names:
            if n.startswith("--") and a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    hw = st.load_hardware()
    state = st.load_state()
    if not state["nvidia"].get("loaded"):
        sys.stdout.write(NO_DRIVER)
        return 9
    driver = str(state["nvidia"].get("driver") or hw["versions"]["nvidia_driver"])
    cuda = str(hw["versions"]["cuda"])
    if "--version" in args:
        print(f"NVIDIA-SMI version  : {driver}")
        print(f"NVML version        : {driver.rsplit('.', 1)[0]}")
        print(f"DRIVER version      : {driver}")
        print(f"CUDA Version        : {cuda}")
        return 0
    everything = nvgpu.visible_gpus(hw, state)
    if not everything:
        print("No devices were found")
        return 6
    # A GPU that fell off the bus has no NVML handle: the error replaces its output.
    lost = [g for g in everything if g["lost"]]
    gpus = _select([g for g in everything if not g["lost"]], _option(args, "-i", "--id"))
    for g in lost:
        print(nvgpu.lost_message(g))
    rc = 15 if lost else 0
    ctx = {"timestamp": nvsmi_query.timestamp(), "driver": driver, "count": len(gpus)}
    if any(a.startswith("--query-gpu") for a in args):
        return _query(args, gpus, ctx) or rc
    if "-pm" in args or any(a.startswith("--persistence-mode") for a in args):
        return _persistence(args, gpus, state) or rc
    if "-L" in args or "--list-gpus" in args:
        sys.stdout.write(list_gpus(gpus))
    elif args[:1] == ["nvlink"]:
        sys.stdout.write(nvlink_status(gpus))
    elif args[:1] == ["topo"]:
        sys.stdout.write(topo_matrix(gpus, hw.get("hcas", [])))
    elif "-q" in args or "--query" in args:
        report = nvsmi_report.xml_report if "-x" in args or "--xml-format" in args else None
        sys.stdout.write((report or nvsmi_report.text_report)(gpus, driver, cuda))
    elif not args:
        sys.stdout.write(default_table(gpus, driver, cuda))
    else:
        sys.stderr.write('Invalid combination of input arguments. Please run "nvidia-smi -h".\n')
        return 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
