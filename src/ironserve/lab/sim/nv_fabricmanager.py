"""Simulated NVIDIA fabric manager daemon (/usr/bin/nv-fabricmanager, nvidia-fabricmanager-580).

While it runs, its pid file tells nvidia-smi that NVSwitch fabric training completed; stopping
the service (what the lab's fabricmanager-down does) turns GPUs back to "In Progress". On a node
without NVSwitches it exits with an error, as the real daemon does.
"""

from __future__ import annotations

import os
import signal
import sys
import time

if not __package__:  # run as a script on a node: make the `sim` package importable
    _here = os.path.dirname(os.path.realpath(__file__))
    _lib = os.path.dirname(_here) if os.path.basename(_here) == "sim" else None
    sys.path.insert(0, _lib or os.environ.get("IRONSERVE_SIM_LIB", "/usr/lib/ironserve-sim"))
    __package__ = "sim"

from . import nvgpu
from . import state as st


def main(argv: list[str] | None = None) -> int:
    hw = st.load_hardware()
    if not hw.get("nvswitches"):
        sys.stderr.write(
            "NVIDIA Fabric Manager: no NVSwitch devices found; "
            "fabric manager is not required on this system\n"
        )
        return 1
    pid_file = st.path(nvgpu.FM_PID_FILE)
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    with open(pid_file, "w", encoding="ascii") as f:
        f.write(f"{os.getpid()}\n")

    def stop(signum: int, frame: object) -> None:
        try:
            os.unlink(pid_file)
        finally:
            sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("Successfully configured all the available NVSwitches to route GPU NVLink traffic.")
    sys.stdout.flush()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
