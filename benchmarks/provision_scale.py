"""A no-op re-run of provisioning on 3, 12 and 48 light lab nodes: pyinfra (ironserve's roles)
against an Ansible playbook doing the same steps on the same nodes, in the same run.

What is measured. Light lab nodes run sshd alone (no systemd, no dockerd, no /data), and
deploys/provision.py as a whole cannot run there: roles/nvidia and roles/container_runtime read
systemd units and stop with "System has not been booted with systemd". So both tools run the
part of provisioning that does run there, roles/base as deploys/provision.py calls it
(benchmarks/provision_light.py, which calls ironserve.roles.base.deploy_base), with the lab
inventory's data (base_time_sync None and base_sysctl_apply False: containers share the host's
kernel and clock). On these NVIDIA-profile nodes that is four steps:

- the base packages (ca-certificates curl gnupg iproute2 kmod pciutils procps) present:
  one dpkg-query read, apt-get only for what is missing;
- /etc/sysctl.d/90-ironserve.conf (vm.max_map_count, fs.inotify.max_user_watches,
  kernel.numa_balancing, net.core.somaxconn), mode 644;
- /etc/security/limits.d/90-ironserve-memlock.conf (memlock unlimited), mode 644;
- /etc/modprobe.d/ironserve-blacklist-nouveau.conf, mode 644 (initramfs rebuilt only on change).

benchmarks/ansible/playbook.yml does the same steps; benchmarks/ansible/inventory.py gives it
the nodes, key and known_hosts of inventories/lab.py and the file contents rendered by roles/base's
own templates. Preflight (read-only checks) is left out of both.

Per size: a lab of N light nodes in its own IRONSERVE_LAB_DIR; one converging pyinfra run; one
Ansible run that must already report changed=0 on every node (proof that both write the same
bytes, modes and packages); then 3 pairs of timed no-op runs, pyinfra then Ansible, each checked
for zero changes (pyinfra's "Grand total" row: nothing under Success or Error; Ansible's PLAY
RECAP: changed=0 failed=0 unreachable=0 on all N hosts); any change or error stops the benchmark.
Times are wall seconds of the whole command (interpreter start, inventory, SSH connections,
facts, operations). Settings: pyinfra --parallel N; ansible-playbook -f N with pipelining,
ControlMaster/ControlPersist, no fact gathering, /usr/bin/python3 named (ansible.cfg), host keys
checked against the lab's known_hosts by both. Each timed Ansible run starts with no SSH master
left from an earlier run (its own ControlPath folder, masters closed after it), as pyinfra starts
with no connection; the script checks it used one master per node (ControlPersist in effect).
ansible-core is installed by pip into a venv under /tmp (--ansible-venv). The lab is removed
afterwards.

    .venv/bin/python benchmarks/provision_scale.py [--sizes 3,12,48] [--profile h100x8]

Prints a table, then, as its last line, one JSON value: a list of objects with nodes, pyinfra_s,
ansible_s, ratio (ansible_s / pyinfra_s, medians of the 3 runs; > 1 means pyinfra is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ironserve.lab import cluster, images  # noqa: E402

BENCH = ROOT / "benchmarks"
DEPLOY = BENCH / "provision_light.py"
ANSIBLE_DIR = BENCH / "ansible"
INVENTORY = ROOT / "inventories" / "lab.py"
RUNS = 3


class BenchmarkError(RuntimeError):
    pass


def ensure_ansible(venv: Path) -> Path:
    """ansible-playbook from ansible-core in its own venv (created and pip-installed once)."""
    playbook = venv / "bin" / "ansible-playbook"
    if not playbook.exists():
        print(f"installing ansible-core into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    version = subprocess.run(
        [str(playbook), "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    print(f"ansible: {version}", file=sys.stderr)
    return playbook


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stdout[-3000:] + "\n" + result.stderr[-2000:]).strip()


def pyinfra(directory: Path, size: int, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "pyinfra"), "-y", "--parallel", str(size)]
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory)}
    return subprocess.run(
        [*command, str(INVENTORY), *args], capture_output=True, text=True, env=env, cwd=ROOT
    )


def wait_ssh(directory: Path, size: int, deadline: float) -> None:
    while True:
        result = pyinfra(directory, size, "exec", "--", "true")
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise BenchmarkError(f"pyinfra could not reach every node:\n{_tail(result)}")
        time.sleep(0.5)


def pyinfra_changes(result: subprocess.CompletedProcess[str], size: int) -> int:
    """Changed operations in pyinfra's summary ("Grand total  hosts  success  error  no-change");
    raises on a failed run or an error."""
    if result.returncode != 0:
        raise BenchmarkError(f"pyinfra failed (exit {result.returncode}):\n{_tail(result)}")
    output = result.stdout + result.stderr  # pyinfra writes its summary to stderr
    totals = [line.split() for line in output.splitlines() if "Grand total" in line]
    if not totals or len(totals[-1]) != 6:
        raise BenchmarkError(f"no 'Grand total' row in pyinfra's summary:\n{_tail(result)}")
    _, _, hosts, success, error, _ = totals[-1]

    def count(cell: str) -> int:
        return 0 if cell == "-" else int(cell)

    if count(error):
        raise BenchmarkError(f"pyinfra reported {error} errors:\n{_tail(result)}")
    if count(hosts) < size:
        raise BenchmarkError(f"pyinfra ran {hosts} host-operations on {size} nodes")
    return count(success)


RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)


def ansible_changes(result: subprocess.CompletedProcess[str], size: int) -> int:
    """Changed tasks summed over the PLAY RECAP; raises unless all ``size`` hosts ran cleanly."""
    recap = result.stdout.rsplit("PLAY RECAP", 1)[-1]
    rows = RECAP.findall(recap) if "PLAY RECAP" in result.stdout else []
    bad = [r for r in rows if int(r[3]) or int(r[4])]
    if result.returncode != 0 or len(rows) != size or bad:
        raise BenchmarkError(
            f"ansible-playbook failed (exit {result.returncode}, {len(rows)}/{size} hosts in "
            f"the recap, unreachable/failed on {[r[0] for r in bad]}):\n{_tail(result)}"
        )
    return sum(int(r[2]) for r in rows)


def ansible(
    playbook_bin: Path, inventory: Path, size: int, work: Path
) -> subprocess.CompletedProcess[str]:
    """One ansible-playbook run with its own ControlPath folder; its SSH masters are closed
    afterwards, so the next run (of either tool) starts without a live connection. Raises
    unless there was one master per node (ControlPersist in effect: the fair setting)."""
    control = Path(tempfile.mkdtemp(prefix="cp-", dir=work))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [
        str(playbook_bin),
        "-f",
        str(size),
        "-i",
        str(inventory),
        str(ANSIBLE_DIR / "playbook.yml"),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    finally:
        masters = list(control.iterdir())
        for socket in masters:
            subprocess.run(
                ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "lab-node"],
                capture_output=True,
            )
    if result.returncode == 0 and len(masters) != size:
        raise BenchmarkError(f"ansible left {len(masters)} SSH masters for {size} nodes")
    return result


def timed(call: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def measure(size: int, profile: str, playbook_bin: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ironserve-provision-scale-") as tmp:
        directory = Path(tmp) / "lab"
        work = Path(tmp) / "ansible"
        directory.mkdir()
        work.mkdir()
        try:
            cluster.up(nodes=size, profile=profile, light=True, directory=directory)
            wait_ssh(directory, size, time.monotonic() + 300)

            converge_s, result = timed(lambda: pyinfra(directory, size, str(DEPLOY)))
            changed = pyinfra_changes(result, size)
            print(
                f"{size} nodes: converging pyinfra run {converge_s:.1f}s, {changed} changes",
                file=sys.stderr,
            )

            inventory = work / "inventory.json"
            generated = subprocess.run(
                [sys.executable, str(ANSIBLE_DIR / "inventory.py")],
                capture_output=True,
                text=True,
                env={**os.environ, "IRONSERVE_LAB_DIR": str(directory)},
                cwd=ROOT,
                check=True,
            )
            inventory.write_text(generated.stdout)

            first_s, result = timed(lambda: ansible(playbook_bin, inventory, size, work))
            changed = ansible_changes(result, size)
            if changed:
                raise BenchmarkError(
                    f"the playbook changed {changed} things on nodes pyinfra had converged: it "
                    f"does not do the same steps:\n{_tail(result)}"
                )
            print(f"{size} nodes: first ansible run {first_s:.1f}s, 0 changes", file=sys.stderr)

            pyinfra_times, ansible_times = [], []
            for run in range(RUNS):
                seconds, result = timed(lambda: pyinfra(directory, size, str(DEPLOY)))
                changed = pyinfra_changes(result, size)
                if changed:
                    raise BenchmarkError(
                        f"pyinfra's re-run {run + 1} changed {changed} operations:\n{_tail(result)}"
                    )
                pyinfra_times.append(seconds)
                seconds, result = timed(lambda: ansible(playbook_bin, inventory, size, work))
                changed = ansible_changes(result, size)
                if changed:
                    raise BenchmarkError(
                        f"ansible's re-run {run + 1} changed {changed} tasks:\n{_tail(result)}"
                    )
                ansible_times.append(seconds)
                print(
                    f"{size} nodes: run {run + 1}: pyinfra {pyinfra_times[-1]:.2f}s, "
                    f"ansible {ansible_times[-1]:.2f}s (0 changes each)",
                    file=sys.stderr,
                )
        finally:
            cluster.down(directory)
    pyinfra_s = statistics.median(pyinfra_times)
    ansible_s = statistics.median(ansible_times)
    return {
        "nodes": size,
        "pyinfra_s": round(pyinfra_s, 2),
        "ansible_s": round(ansible_s, 2),
        "ratio": round(ansible_s / pyinfra_s, 2),
        "pyinfra_runs_s": [round(t, 2) for t in pyinfra_times],
        "ansible_runs_s": [round(t, 2) for t in ansible_times],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3,12,48")
    parser.add_argument("--profile", default="h100x8")
    parser.add_argument(
        "--ansible-venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ironserve-bench-ansible-venv",
        help="venv for ansible-core (created with pip when it has no ansible-playbook)",
    )
    args = parser.parse_args()
    playbook_bin = ensure_ansible(args.ansible_venv)
    client = cluster.connect()
    started = time.monotonic()
    built = images.ensure_images(client)
    print(f"images ready in {time.monotonic() - started:.1f}s: {built.node}", file=sys.stderr)
    try:
        rows = [measure(int(s), args.profile, playbook_bin) for s in args.sizes.split(",")]
    except BenchmarkError as error:
        print(f"provision_scale: {error}", file=sys.stderr)
        return 1
    columns = [
        ("nodes", "nodes"),
        ("pyinfra_s", "pyinfra no-op s"),
        ("ansible_s", "ansible no-op s"),
        ("ratio", "ansible/pyinfra"),
    ]
    print("  ".join(title for _, title in columns) + "  (medians of 3 runs)")
    for r in rows:
        print("  ".join(f"{r[key]!s:>{len(title)}}" for key, title in columns))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
