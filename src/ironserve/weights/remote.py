"""Commands on a node from the CLI (progress polling, verification), through the one transport
(``deploy/transport.py``: pyinfra's connector with the inventory's own connection settings)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from ironserve.deploy import transport

# Full re-hash of the listed files (stdin: JSON {"dest", "paths"}); prints {path: [size, sha256,
# git blob sha1] or null}.
VERIFY_PROBE = r"""
import hashlib, json, os, sys
req = json.load(sys.stdin)
out = {}
for p in req["paths"]:
    f = os.path.join(req["dest"], p)
    if not os.path.isfile(f):
        out[p] = None
        continue
    size = os.path.getsize(f)
    a, b = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with open(f, "rb") as h:
        while True:
            c = h.read(1 << 20)
            if not c:
                break
            a.update(c)
            b.update(c)
    out[p] = [size, a.hexdigest(), b.hexdigest()]
print(json.dumps(out))
"""
HELD_TIMEOUT_S = 20
# Re-hashing reads every byte, so its limit grows with the bytes to hash: this floor (connect,
# start, a small checkpoint) plus the bytes at a rate any node's disk and sha256 beat (a 640 GiB
# checkpoint gets about two hours).
VERIFY_TIMEOUT_S = 600
VERIFY_MIN_BYTES_PER_S = 100 * 2**20


def verify_timeout(total_bytes: int) -> float:
    """Seconds a node may take to re-hash ``total_bytes``."""
    return VERIFY_TIMEOUT_S + max(total_bytes, 0) / VERIFY_MIN_BYTES_PER_S


def held_bytes(state: Any, host: Any, dest: str) -> int:
    """Bytes of the weights on a node: final folder plus its staging folder (progress only,
    over the connection the running deploy opened; 0 before it has one)."""
    q = shlex.quote
    command = f"du -sb {q(dest)} {q(dest + '.incoming')} 2>/dev/null; true"
    result = transport.run(state, host, command, timeout=HELD_TIMEOUT_S, connect=False)
    return sum(int(line.split()[0]) for line in result.stdout.splitlines() if line.strip())


def hashes(
    state: Any, host: Any, dest: str, paths: list[str], total_bytes: int = 0
) -> dict[str, Any]:
    """Each listed file's size and hashes on the node (``total_bytes``: their sum, which sets
    the time limit)."""
    request = json.dumps({"dest": dest, "paths": paths})
    result = transport.run(
        state,
        host,
        f"python3 -c {shlex.quote(VERIFY_PROBE)}",
        timeout=verify_timeout(total_bytes),
        stdin=request,
    )
    if not result.ok:
        why = result.error or result.stderr.strip()[-300:]
        raise RuntimeError(f"{host.name}: verify failed: {why}")
    return dict(json.loads(result.stdout))
