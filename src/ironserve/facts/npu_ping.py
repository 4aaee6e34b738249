"""NPU peer pings on Ascend: ``hccn_tool -i N -ping -g address X`` from each local NPU to the NPU
with the same index on every peer node (the HCCL plane: device i talks to device i), all in
parallel on the node, each bounded by ``timeout``.

Output (ascend.md 4e, tests/fixtures/outputs/hccn-ping.txt)::

    device 3 PING 29.1.137.205
    recv seq=0,time=1.418000ms
    ...
    3 packets transmitted, 3 received, 0.00% packet loss

.. code:: python

    host.get_fact(NpuPeerPings, targets=((0, "10.20.0.2"), (1, "10.20.1.2")))
    {(0, "10.20.0.2"): {"sent": 3, "received": 3, "loss": 0.0, "rc": 0}, ...}
    # a missing hccn_tool: {} ; a timeout or no summary line: sent/received None
"""

from __future__ import annotations

import re
import shlex
from typing import Any, TypedDict

from pyinfra.api.facts import FactBase

from ironserve.facts.ascend import HCCN_TOOL_FALLBACK

PING_TIMEOUT_S = 15
_SUMMARY = re.compile(
    r"(\d+) packets transmitted,\s*(\d+) received,\s*([\d.]+)% packet loss", re.IGNORECASE
)


class PingResult(TypedDict):
    sent: int | None
    received: int | None
    loss: float | None
    rc: int | None


def parse_ping(lines: list[str], rc: int | None = None) -> PingResult:
    for line in lines:
        match = _SUMMARY.search(line)
        if match:
            return PingResult(
                sent=int(match.group(1)),
                received=int(match.group(2)),
                loss=float(match.group(3)),
                rc=rc,
            )
    return PingResult(sent=None, received=None, loss=None, rc=rc)


def ping_command(targets: tuple[tuple[int, str], ...], timeout_s: int = PING_TIMEOUT_S) -> str:
    jobs = []
    for n, (device, address) in enumerate(targets):
        cmd = (
            f'timeout {timeout_s} "$HCCN" -i {int(device)} -ping -g address {shlex.quote(address)}'
        )
        jobs.append(f'( {cmd} > "$T/{n}" 2>&1; echo "@@rc $?" >> "$T/{n}" ) &')
    prints = "; ".join(
        f'echo "@@ping {int(d)} {shlex.quote(a)}"; cat "$T/{n}"' for n, (d, a) in enumerate(targets)
    )
    return (
        f"HCCN=$(command -v hccn_tool || echo {HCCN_TOOL_FALLBACK}); "
        '[ -x "$HCCN" ] || exit 0; T=$(mktemp -d); '
        + " ".join(jobs)
        + f' wait; {prints}; rm -rf "$T"; true'
    )


def parse_pings(output: list[str]) -> dict[tuple[int, str], PingResult]:
    found: dict[tuple[int, str], PingResult] = {}
    key: tuple[int, str] | None = None
    block: list[str] = []
    rc: int | None = None

    def close() -> None:
        if key is not None:
            found[key] = parse_ping(block, rc)

    for line in output:
        parts = line.split()
        if parts[:1] == ["@@ping"] and len(parts) == 3:
            close()
            key, block, rc = (int(parts[1]), parts[2]), [], None
        elif parts[:1] == ["@@rc"] and len(parts) == 2 and parts[1].isdigit():
            rc = int(parts[1])
        else:
            block.append(line)
    close()
    return found


class NpuPeerPings(FactBase[dict[tuple[int, str], PingResult]]):
    """Ping results by (local device, peer address); {} when ``hccn_tool`` is absent.

    + targets: ((local device index, peer NPU address), ...)
    """

    def command(self, targets: tuple[tuple[int, str], ...]) -> str:
        return ping_command(tuple(targets))

    @staticmethod
    def default() -> dict[tuple[int, str], Any]:
        return {}

    def process(self, output: list[str]) -> dict[tuple[int, str], PingResult]:
        return parse_pings(output)
