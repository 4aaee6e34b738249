"""What a node holds for the weights (one fact, read before any operation): the manifest, size
and mtime of the files it lists, free bytes where the weights go, the hub client (its venv's
packages and versions, its Python's marker environment), the SSH host key (for the fan-out's
known_hosts)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api.facts import FactBase

# Runs with the node's python3 (stdlib): prints one JSON object.
_PROBE = r"""
import glob, json, os, platform, sys
dest, venv = sys.argv[1], sys.argv[2]
out = {"manifest": None, "stat": {}, "staging_bytes": 0}
out["client"] = os.access(venv + "/bin/python", os.X_OK)
# The venv's distributions (name-version.dist-info) and the marker environment its python3 has:
# the control machine compares them with the lock's pins.
out["client_versions"] = dict(
    os.path.basename(p)[: -len(".dist-info")].rsplit("-", 1)
    for p in glob.glob(venv + "/lib/python*/site-packages/*-*.dist-info")
)
out["client_env"] = {
    "implementation_name": sys.implementation.name,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_system": platform.system(),
    "python_full_version": platform.python_version(),
    "python_version": "%d.%d" % sys.version_info[:2],
    "sys_platform": sys.platform,
}
try:
    with open(os.path.join(dest, "ironserve-manifest.json")) as f:
        out["manifest"] = json.load(f)
except (OSError, ValueError):
    pass
for p in (out["manifest"] or {}).get("files", {}):
    try:
        st = os.stat(os.path.join(dest, p))
        out["stat"][p] = [st.st_size, st.st_mtime_ns]
    except OSError:
        pass
for root, _, names in os.walk(dest + ".incoming"):
    for n in names:
        try:
            out["staging_bytes"] += os.lstat(os.path.join(root, n)).st_size
        except OSError:
            pass
probe = dest
while not os.path.isdir(probe):
    probe = os.path.dirname(probe) or "/"
s = os.statvfs(probe)
out["free_path"], out["free_bytes"] = probe, s.f_bavail * s.f_frsize
try:
    with open("/etc/ssh/ssh_host_ed25519_key.pub") as f:
        out["host_key"] = " ".join(f.read().split()[:2])
except OSError:
    out["host_key"] = None
print(json.dumps(out))
"""


class WeightsState(FactBase[dict[str, Any]]):
    """``host.get_fact(WeightsState, dest=..., venv=...)``."""

    def command(self, dest: str, venv: str) -> str:
        return f"python3 -c {shlex.quote(_PROBE)} {shlex.quote(dest)} {shlex.quote(venv)}"

    def process(self, output: list[str]) -> dict[str, Any]:
        return dict(json.loads("\n".join(output)))
