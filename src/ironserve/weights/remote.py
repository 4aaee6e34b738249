"""Commands on a node from the CLI (progress polling, verification): plain `ssh` with the
inventory's own connection settings (host, port, user, key, known_hosts), never a blind accept."""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Any

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


def ssh_argv(name: str, data: dict[str, Any]) -> list[str]:
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    if data.get("ssh_port"):
        argv += ["-p", str(data["ssh_port"])]
    if data.get("ssh_key"):
        argv += ["-i", str(data["ssh_key"]), "-o", "IdentitiesOnly=yes"]
    if data.get("ssh_known_hosts_file"):
        argv += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    strict = data.get("ssh_strict_host_key_checking") or "yes"
    argv += ["-o", f"StrictHostKeyChecking={strict}"]
    user = data.get("ssh_user")
    target = str(data.get("ssh_hostname") or name)
    return [*argv, f"{user}@{target}" if user else target]


def run(
    name: str, data: dict[str, Any], command: str, stdin: str = "", timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ssh_argv(name, data), command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def held_bytes(name: str, data: dict[str, Any], dest: str) -> int:
    """Bytes of the weights on a node: final folder plus its staging folder (progress only)."""
    q = shlex.quote
    result = run(name, data, f"du -sb {q(dest)} {q(dest + '.incoming')} 2>/dev/null", timeout=20)
    return sum(int(line.split()[0]) for line in result.stdout.splitlines() if line.strip())


def hashes(name: str, data: dict[str, Any], dest: str, paths: list[str]) -> dict[str, Any]:
    request = json.dumps({"dest": dest, "paths": paths})
    result = run(name, data, f"python3 -c {shlex.quote(VERIFY_PROBE)}", stdin=request)
    if result.returncode != 0:
        raise RuntimeError(f"{name}: verify failed: {result.stderr.strip()[-300:]}")
    return dict(json.loads(result.stdout))
