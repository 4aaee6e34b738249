"""Golden files of everything roles/base, nvidia and container_runtime write on a node:
daemon.json (merged into existing files), sysctl, limits.d, modprobe.d, the systemd drop-in and
the apt source lines.

Regenerate with ``IRONSERVE_UPDATE_GOLDEN=1 pytest tests/golden``, then read the diff.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from ironserve.operations.docker import merge_daemon_config, render_daemon_json
from ironserve.operations.templates import render
from ironserve.plan.derived import Gateway
from ironserve.roles.base.defaults import DEFAULTS as BASE
from ironserve.roles.base.deploy import sysctl_text
from ironserve.roles.container_runtime import daemon_settings
from ironserve.roles.container_runtime.defaults import DEFAULTS as RUNTIME
from ironserve.roles.firewall.defaults import FirewallData
from ironserve.roles.firewall.ruleset import ruleset_text, spec_for, unit_text
from ironserve.roles.nvidia.deploy import source_line
from ironserve.serving import gateway

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "roles"
FIXTURES = ROOT / "tests" / "fixtures" / "outputs"
UPDATE_ENV = "IRONSERVE_UPDATE_GOLDEN"

UBUNTU_2404 = {"name": "Ubuntu", "release_meta": {"ID": "ubuntu", "VERSION_ID": "24.04"}}
DEBIAN_12 = {"name": "Debian", "release_meta": {"ID": "debian", "VERSION_ID": "12"}}


def _data(**overrides: object) -> SimpleNamespace:
    return SimpleNamespace(**{**RUNTIME, **overrides})


def _daemon(existing: dict[str, object], **overrides: object) -> str:
    return render_daemon_json(merge_daemon_config(existing, daemon_settings(_data(**overrides))))


def _apt_line(setting: str, distro: dict[str, object], arch: str) -> str:
    line, _ = source_line(setting, distro, arch)
    return render("nvidia", "apt-source.list", line=line, description="NVIDIA packages")


def _firewall(node: str, *, api: bool, admin: bool) -> str:
    """A two-node group with monitoring on its API node (10.20.0.10), the API open to one
    site network, Prometheus to an admin network, SSH on 22 and on 2222 (this run's port)."""
    data = FirewallData(
        serving_allowed_cidrs=("10.0.0.0/8", "10.20.0.0/16"),  # merged into 10.0.0.0/8
        firewall_admin_cidrs=("192.168.7.0/24",),
    )
    spec = spec_for(
        node,
        "r1",
        ["10.20.0.10", "10.20.0.11", "10.20.0.10"],  # the monitoring server is a member
        ssh=((*data.firewall_ssh_ports, 2222), data.firewall_ssh_cidrs),
        api=((8000, 3000), data.serving_allowed_cidrs) if api else None,
        admin=((9090,), data.firewall_admin_cidrs) if admin else None,
        monitoring=True,
    )
    return ruleset_text(spec)


# A key with every character a bearer token may hold besides letters and digits.
GATEWAY_KEY = "k3y-Ex.am_ple~0+/9=="


def _gateway(upstream: str, public: list[str]) -> Gateway:
    return Gateway(
        node="h100-1",
        port=8000,
        upstream=upstream,
        container="ironserve-r1-gateway",
        config_file="/etc/ironserve/r1/gateway.conf",
        public_paths=public,
    )


def _gateway_conf(upstream: str, public: list[str]) -> str:
    peers = ["10.20.0.10", "10.20.0.11"]
    return gateway.config_text("r1", _gateway(upstream, public), GATEWAY_KEY, peers)


CASES = {
    "daemon.json.empty": lambda: _daemon({}),
    "daemon.json.nvidia-ctk-existing": lambda: _daemon(
        json.loads((FIXTURES / "daemon.json.plain.json").read_text())
    ),
    "daemon.json.mirrors": lambda: _daemon(
        {"insecure-registries": ["old.registry:5000"], "data-root": "/data/docker"},
        container_runtime_registry_mirrors=["https://mirror.lab"],
        container_runtime_insecure_registries=["registry.lab:5000"],
    ),
    "sysctl.conf": lambda: sysctl_text(BASE["base_sysctl"]),
    "memlock.conf": lambda: render("base", "memlock.conf"),
    "blacklist-nouveau.conf": lambda: render("base", "blacklist-nouveau.conf"),
    "docker-limits.conf": lambda: render("container_runtime", "docker-limits.conf"),
    "nvidia.list.cuda-ubuntu2404": lambda: _apt_line("cuda", UBUNTU_2404, "x86_64"),
    "nvidia.list.cuda-debian12-arm64": lambda: _apt_line("cuda", DEBIAN_12, "aarch64"),
    "firewall.nft.api-node": lambda: _firewall("h100-1", api=True, admin=True),
    "firewall.nft.worker": lambda: _firewall("h100-2", api=False, admin=False),
    "ironserve-firewall.service": unit_text,
    # vLLM behind the gateway with the defaults: every path wants the key, /metrics answers the
    # group's nodes and the monitoring server without it.
    "gateway.conf.default": lambda: _gateway_conf("127.0.0.1:18000", []),
    # MindIE (its own node address) with /metrics public and /health open to load balancers.
    "gateway.conf.mindie-public-paths": lambda: _gateway_conf(
        "10.20.0.10:18000", ["/health", "/metrics"]
    ),
    "gateway.docker-run": lambda: (
        shlex.join(
            gateway.container(
                _gateway("127.0.0.1:18000", []), "nginx@sha256:" + "0" * 64
            ).docker_run_argv()
        )
        + "\n"
    ),
    "nvidia.list.lab": lambda: _apt_line(
        "deb [trusted=yes] http://172.30.100.2/ ./", DEBIAN_12, "x86_64"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_file_matches_golden(name: str) -> None:
    text = CASES[name]()
    path = GOLDEN / name
    if os.environ.get(UPDATE_ENV) == "1":
        path.write_text(text, encoding="utf-8")
    if not path.is_file():
        pytest.fail(f"golden file {path} is missing; create it with {UPDATE_ENV}=1 and review it")
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from {path}; regenerate with {UPDATE_ENV}=1 and review the diff"
    )


def test_merge_keeps_foreign_keys_and_list_items() -> None:
    merged = json.loads(
        _daemon(
            {"insecure-registries": ["old.registry:5000"], "data-root": "/data/docker"},
            container_runtime_insecure_registries=["registry.lab:5000"],
        )
    )
    assert merged["data-root"] == "/data/docker"
    assert merged["insecure-registries"] == ["old.registry:5000", "registry.lab:5000"]
