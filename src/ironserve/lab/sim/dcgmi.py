"""Simulated `dcgmi diag -r 1|2|3 [-j]` (datacenter-gpu-manager-4), DCGM 4 layout.

Text layout: dcgm.md 2 (plugin rows `software`/`memory`/`pcie`, per-GPU `GPUn: Pass` rows,
46-column wrapped warnings). JSON: DCGM 4 keys (dcgm.md 3b/3c: "DCGM Diagnostic" root,
entity-based results, test_summary) in jsoncpp's styled form. Faults fail the plugin that
would see them; the warning texts follow DCGM's error-code messages from memory, not a capture.
"""

from __future__ import annotations

import os
import sys
from typing import Any

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import nvgpu
from . import state as st

JSON = st.JSON
DCGM_VERSION = "4.4.2"

# level -> [(category, [plugin, ...])]
LEVELS: dict[int, list[tuple[str, list[str]]]] = {
    1: [("Deployment", ["software"])],
    2: [("Deployment", ["software"]), ("Hardware", ["memory"]), ("Integration", ["pcie"])],
    3: [
        ("Deployment", ["software"]),
        ("Hardware", ["memory", "diagnostic"]),
        ("Integration", ["pcie"]),
        ("Stress", ["targeted_stress", "targeted_power", "memory_bandwidth"]),
    ],
}


def failures(gpus: list[JSON]) -> dict[str, list[tuple[int, str]]]:
    """plugin -> [(gpu index, warning)] for the faults DCGM would catch."""
    out: dict[str, list[tuple[int, str]]] = {}
    for g in gpus:
        n = g["index"]
        if g["lost"]:
            out.setdefault("software", []).append((n, f"GPU {n} is lost and must be reset."))
        if g["remap_pending"]:
            out.setdefault("software", []).append(
                (
                    n,
                    f"GPU {n} had uncorrectable memory errors and row remapping is pending. "
                    "Drain the GPU and reset it or reboot the node to resolve this issue.",
                )
            )
        if g["ecc_uncorrected"]:
            out.setdefault("memory", []).append(
                (n, f"Detected {g['ecc_uncorrected']} volatile double-bit ECC error(s) in GPU {n}.")
            )
        if g["fabric"][0] == "In Progress":
            out.setdefault("memory", []).append(
                (n, f"Error using CUDA API cuInit: 'system not yet initialized' for GPU {n}.")
            )
    return out


def _row(left: str, right: str) -> str:
    return f"| {left:<25} | {right:<46} |"


def _cat(name: str, edge: str) -> str:
    return f"{edge}{('-----  ' + name + '  '):-<27}+{'-' * 48}{edge}"


def text(gpus: list[JSON], level: int, driver: str) -> str:
    fails = failures(gpus)
    ids = ", ".join(g["pci_device_id"][2:6].lower() for g in gpus)
    out = [
        "Successfully ran diagnostic for group.",
        "+" + "-" * 27 + "+" + "-" * 48 + "+",
        _row("Diagnostic", "Result"),
        "+" + "=" * 27 + "+" + "=" * 48 + "+",
        _cat("Metadata", "|"),
        _row("DCGM Version", DCGM_VERSION),
        _row("Driver Version Detected", driver),
        _row("GPU Device IDs Detected", ids),
    ]
    for ci, (category, plugins) in enumerate(LEVELS[level]):
        out.append(_cat(category, "|" if ci == 0 else "+"))
        for plugin in plugins:
            bad = fails.get(plugin, [])
            out.append(_row(plugin, "Fail" if bad else "Pass"))
            for _n, warning in bad:
                # DCGM cuts warnings into fixed 46-column chunks, mid-word (dcgm.md 2).
                wrapped = [warning[i : i + 46] for i in range(0, len(warning), 46)] or [""]
                out.append(_row("Warning", wrapped[0]))
                out += [_row("", w) for w in wrapped[1:]]
            failed = {n for n, _ in bad}
            out += [
                _row("", f"GPU{g['index']}: {'Fail' if g['index'] in failed else 'Pass'}")
                for g in gpus
            ]
    out.append("+" + "-" * 27 + "+" + "-" * 48 + "+")
    return "\n".join(out) + "\n"


def _styled(value: Any, indent: int) -> str:
    """jsoncpp StyledStreamWriter with TAB indentation, as dcgmi -j prints."""
    pad = "\t" * indent
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                items.append(f'{pad}\t"{k}" : \n{pad}\t{_styled(v, indent + 1)}')
            else:
                items.append(f'{pad}\t"{k}" : {_styled(v, indent + 1)}')
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(f"{pad}\t{_styled(v, indent + 1)}" for v in value) + f"\n{pad}]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def json_doc(gpus: list[JSON], level: int, driver: str) -> str:
    fails = failures(gpus)
    categories = []
    for category, plugins in LEVELS[level]:
        tests = []
        for plugin in plugins:
            bad = {n: w for n, w in fails.get(plugin, [])}
            results = []
            for g in gpus:
                r: JSON = {"entity_group": "GPU", "entity_group_id": 1, "entity_id": g["index"]}
                if g["index"] in bad:
                    r["status"] = "Fail"
                    r["warnings"] = [
                        {"error_category": 1, "error_id": 0, "warning": bad[g["index"]]}
                    ]
                else:
                    r["status"] = "Pass"
                results.append(r)
            tests.append(
                {
                    "name": plugin,
                    "results": results,
                    "test_summary": {"status": "Fail" if bad else "Pass"},
                }
            )
        categories.append({"category": category, "tests": tests})
    doc = {
        "DCGM Diagnostic": {"test_categories": categories},
        "metadata": {
            "DCGM Version": DCGM_VERSION,
            "Driver Version Detected": driver,
            "GPU Device IDs Detected": [g["pci_device_id"][2:6].lower() for g in gpus],
        },
    }
    return _styled(doc, 0) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["diag"]:
        sys.stderr.write("Only `dcgmi diag` is simulated.\n")
        return 1
    level = 1
    for i, a in enumerate(args):
        if a in ("-r", "--run") and i + 1 < len(args):
            level = int(args[i + 1]) if args[i + 1].isdigit() else 1
    level = max(1, min(level, 3))
    hw = st.load_hardware()
    state = st.load_state()
    if not state["nvidia"].get("loaded"):
        sys.stdout.write(
            "Error: unable to establish a connection to the specified host: localhost\n"
        )
        return 255
    driver = str(state["nvidia"].get("driver") or hw["versions"]["nvidia_driver"])
    gpus = nvgpu.visible_gpus(hw, state)
    for i, a in enumerate(args):
        if a in ("-i", "--gpuList") and i + 1 < len(args):
            wanted = {int(x) for x in args[i + 1].split(",") if x.strip().isdigit()}
            gpus = [g for g in gpus if g["index"] in wanted]
    write = json_doc if "-j" in args or "--json" in args else text
    sys.stdout.write(write(gpus, level, driver))
    return 0 if not failures(gpus) else 226


if __name__ == "__main__":
    sys.exit(main())
