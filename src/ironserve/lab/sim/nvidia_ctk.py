"""Simulated `nvidia-ctk` (nvidia-container-toolkit): `runtime configure --runtime=docker`.

Merges /etc/docker/daemon.json the way the real one does (container.md 1): keeps every key,
sets ``runtimes.nvidia = {"args": [], "path": "nvidia-container-runtime"}``, adds
``default-runtime`` only with --set-as-default, writes Go's MarshalIndent form (4 spaces, keys
sorted, no trailing newline). Log lines are logrus' TTY form on stderr (container.md 1e;
that sample is unattributed, so the wording is the best public evidence, not a capture).
"""

from __future__ import annotations

import json
import os
import sys

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import state as st

JSON = st.JSON
VERSION = "1.17.8"


def _log(msg: str) -> None:
    sys.stderr.write(f"INFO[0000] {msg:<44} \n")


def configure(config: JSON, runtime_name: str, set_default: bool) -> JSON:
    new = dict(config)
    runtimes = dict(new.get("runtimes") or {})
    runtimes[runtime_name] = {"args": [], "path": "nvidia-container-runtime"}
    new["runtimes"] = runtimes
    if set_default:
        new["default-runtime"] = runtime_name
    return new


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--version"]:
        print(f"NVIDIA Container Toolkit CLI version {VERSION}")
        return 0
    if args[:2] != ["runtime", "configure"]:
        sys.stderr.write("Incorrect Usage: only `runtime configure` is simulated\n")
        return 1
    opts = args[2:]
    runtime = next((a.split("=", 1)[1] for a in opts if a.startswith("--runtime=")), "docker")
    if "--runtime" in opts:
        runtime = opts[opts.index("--runtime") + 1]
    if runtime != "docker":
        sys.stderr.write(f"ERRO[0000] unrecognized runtime '{runtime}'\n")
        return 1
    config_path = next(
        (a.split("=", 1)[1] for a in opts if a.startswith("--config=")), "/etc/docker/daemon.json"
    )
    name = next(
        (a.split("=", 1)[1] for a in opts if a.startswith("--nvidia-runtime-name=")), "nvidia"
    )
    target = st.path(config_path)
    try:
        with open(target, encoding="utf-8") as f:
            text = f.read()
        _log(f"Loading config from {config_path}")
        config: JSON = json.loads(text) if text.strip() else {}
    except FileNotFoundError:
        _log("Config file does not exist; using empty config")
        config = {}
    new = configure(config, name, "--set-as-default" in opts)
    st.write_file(config_path, json.dumps(new, indent=4, sort_keys=True))
    _log(f"Wrote updated config to {config_path}")
    _log("It is recommended that docker daemon be restarted.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
