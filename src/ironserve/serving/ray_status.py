"""``ray status`` as data: alive nodes and the cluster's GPUs, in all three layouts Ray has
printed (../shared/reference/outputs/ray.md): ``Healthy:`` (Ray < 2.10), ``Active:`` +
``Usage:``, and ``Active:`` / ``Idle:`` + ``Total Usage:``. Node lines are ``<count> <name>``;
GPU lines ``used/total GPU`` (optionally ``(... reserved in placement groups)``). Per-node blocks
of ``ray status -v`` (``Node: ...``) are not counted twice.

``ray status`` names nodes by id only; :func:`parse_nodes_probe` reads the addresses (the JSON
the probe prints inside the head container from ``ray.nodes()``) to name a missing node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

ALIVE_SECTIONS = ("Healthy:", "Active:", "Idle:")
_NODE_LINE = re.compile(r"^\s+(\d+)\s+\S+")
_GPU_LINE = re.compile(r"^\s+([\d.]+)/([\d.]+)\s+GPU\b")

# Run with the image's python (vLLM images ship Ray): alive nodes, their address and GPUs.
NODES_PROBE = (
    "import json, ray; "
    "ray.init(address='auto', logging_level='ERROR', log_to_driver=False); "
    "print(json.dumps([{'address': n['NodeManagerAddress'], 'gpus': n['Resources'].get('GPU', 0)}"
    " for n in ray.nodes() if n.get('Alive')]))"
)


@dataclass(frozen=True)
class RayStatus:
    nodes: int  # alive nodes (Healthy / Active / Idle)
    gpus: float  # total GPUs the cluster declares
    gpus_used: float
    layout: str  # "healthy", "active", "none"


def parse(text: str) -> RayStatus:
    """Parse ``ray status`` output (wrapper lines before or after it are ignored)."""
    nodes, section, layout = 0, None, "none"
    gpus: tuple[float, float] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Node: "):  # `ray status -v` per-node blocks: already counted
            section = "per-node"
            continue
        if stripped in ALIVE_SECTIONS:
            section = "alive"
            if layout == "none":
                layout = "healthy" if stripped == "Healthy:" else "active"
            continue
        if stripped.endswith(":") and not line.startswith(" "):
            section = stripped
            continue
        if section == "alive":
            match = _NODE_LINE.match(line)
            if match:
                nodes += int(match.group(1))
        elif section in ("Usage:", "Total Usage:") and gpus is None:
            match = _GPU_LINE.match(line)
            if match:
                gpus = (float(match.group(1)), float(match.group(2)))
    used, total = gpus if gpus is not None else (0.0, 0.0)
    return RayStatus(nodes=nodes, gpus=total, gpus_used=used, layout=layout)


def parse_nodes_probe(text: str) -> dict[str, float]:
    """The probe's JSON line (the last line that parses) as {address: GPUs}."""
    for line in reversed(text.strip().splitlines()):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(doc, list):
            return {str(n["address"]): float(n.get("gpus", 0)) for n in doc}
    raise ValueError(f"no node list in the probe's output: {text.strip()[-300:]!r}")


def missing(
    planned: dict[str, tuple[str, float]], alive: dict[str, float]
) -> list[tuple[str, str, str]]:
    """(node, address, why) for each planned node (name -> (address, GPUs)) Ray lacks."""
    gaps = []
    for name, (address, gpus) in planned.items():
        if address not in alive:
            gaps.append((name, address, "not in the Ray cluster"))
        elif alive[address] < gpus:
            gaps.append((name, address, f"{alive[address]:g} of {gpus:g} GPUs in Ray"))
    return gaps
