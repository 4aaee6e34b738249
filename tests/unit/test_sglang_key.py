"""SGLang's API key never reaches a process's argv (what `ps -eo args` shows every user of the
node): the container's entrypoint and command run here as docker would run them, with the env
file's variable set, against a stand-in `sglang.launch_server` that records the options it
parsed and every process's command line while it runs (its own, and a `spawn` child's, as
SGLang's scheduler processes are)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ironserve.engines import build_launches
from ironserve.engines.common import IRONSERVE_API_KEY_ENV
from tests.golden.test_golden_engines import h100x8_2node_r1_sglang

KEY = "sk-probe-SECRET-4b1d"

STAND_IN = """
import json, multiprocessing, os, sys


def cmdlines():
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    found.append(handle.read().replace(b"\\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return found


def child(queue):
    queue.put(cmdlines())


if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    seen = queue.get(timeout=60)
    process.join()
    with open(os.environ["PROBE_OUT"], "w") as out:
        json.dump({"argv": sys.argv[1:], "cmdlines": cmdlines() + seen}, out)
"""


def test_the_key_reaches_sglang_but_no_process_argv(tmp_path: Path) -> None:
    package = tmp_path / "sglang"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "launch_server.py").write_text(STAND_IN)
    head = build_launches(h100x8_2node_r1_sglang())[0].container
    entrypoint = head.run_args[head.run_args.index("--entrypoint") + 1]
    out = tmp_path / "probe.json"
    bin_dir = tmp_path / "bin"  # `python3` in the container: this interpreter
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(tmp_path),
        "PROBE_OUT": str(out),
        IRONSERVE_API_KEY_ENV: KEY,  # what --env-file sets
    }
    result = subprocess.run(
        [entrypoint, *head.command], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(out.read_text())
    argv = probe["argv"]
    assert argv[argv.index("--api-key") + 1] == KEY  # SGLang is given the key
    assert "--served-model-name" in argv
    leaked = [line for line in probe["cmdlines"] if KEY in line]
    assert leaked == [], f"the key is in a process's argv: {leaked}"
    assert any("sglang" in line for line in probe["cmdlines"])  # the probe saw the engine
