"""Ansible inventory of the lab, for benchmarks/ansible/playbook.yml: the hosts and data of
inventories/lab.py (same nodes, key, known_hosts, role data) and roles/base's files rendered by
its own templates, so the playbook writes byte for byte what roles/base writes.

    IRONSERVE_LAB_DIR=/tmp/lab .venv/bin/python benchmarks/ansible/inventory.py > inventory.json
    ansible-playbook -i inventory.json benchmarks/ansible/playbook.yml

Prints one JSON document (Ansible's yaml inventory plugin reads it when the file ends in .json).
"""

from __future__ import annotations

import json
import runpy
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from ironserve.catalog.accelerators import ACCELERATORS  # noqa: E402
from ironserve.operations.templates import render  # noqa: E402
from ironserve.roles.base.defaults import DEFAULTS  # noqa: E402


def inventory() -> dict[str, Any]:
    """The lab as an Ansible inventory (group ``lab``), from inventories/lab.py."""
    lab = runpy.run_path(str(ROOT / "inventories" / "lab.py"))["lab"]
    hosts: dict[str, Any] = {}
    for name, data in lab:
        base = {key: data.get(key, default) for key, default in DEFAULTS.items()}
        if base["base_time_sync"] is not None:
            raise SystemExit(f"{name}: base_time_sync is set; the playbook has no time-sync step")
        ssh_args = [
            "-o",
            f"UserKnownHostsFile={data['ssh_known_hosts_file']}",
            "-o",
            f"StrictHostKeyChecking={data['ssh_strict_host_key_checking']}",
        ]
        hosts[name] = {
            "ansible_host": data["ssh_hostname"],
            "ansible_port": data["ssh_port"],
            "ansible_user": data["ssh_user"],
            "ansible_ssh_private_key_file": data["ssh_key"],
            "ansible_ssh_common_args": shlex.join(ssh_args),
            "vendor": ACCELERATORS[data["accelerator_kind"]].vendor,
            "base_packages": list(base["base_packages"]),
            "base_sysctl_apply": bool(base["base_sysctl_apply"]),
            "base_memlock_unlimited": bool(base["base_memlock_unlimited"]),
            "base_blacklist_nouveau": bool(base["base_blacklist_nouveau"]),
            "base_sysctl_text": render("base", "sysctl.conf", settings=dict(base["base_sysctl"])),
            "base_memlock_text": render("base", "memlock.conf"),
            "base_nouveau_text": render("base", "blacklist-nouveau.conf"),
        }
    return {"lab": {"hosts": hosts}}


if __name__ == "__main__":
    print(json.dumps(inventory(), indent=1))
