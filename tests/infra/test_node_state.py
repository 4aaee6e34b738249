"""A provisioned node is in the state the roles and the Plan describe: packages, services, files
with their modes and contents, the container runtime, the vendor stack, and with ``--serving``
the engine containers and the secrets file."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from ironserve.operations.templates import render
from ironserve.roles.base.deploy import MEMLOCK_FILE, NOUVEAU_FILE, SYSCTL_FILE, sysctl_text
from ironserve.roles.container_runtime.deploy import daemon_settings
from tests.infra.conftest import Site


def _file(site: Site, path: str, mode: int, content: str | None = None) -> None:
    f = site.host.file(path)
    assert f.exists, f"{site.name}: {path} is missing"
    assert (f.user, f.group) == ("root", "root"), f"{site.name}: {path} owner {f.user}:{f.group}"
    assert f.mode == mode, f"{site.name}: {path} mode {f.mode:o}, expected {mode:o}"
    if content is not None:
        assert f.content_string == content, f"{site.name}: {path} differs from the rendering"


def _held(site: Site, package: str) -> bool:
    out = site.host.check_output(f"dpkg --get-selections {package}")
    return out.split()[-1:] == ["hold"]


def _lspci(site: Site) -> str:
    return str(site.host.check_output("lspci -nn"))


def test_base_packages(site: Site) -> None:
    packages = list(site.data["base_packages"])
    if site.data["base_time_sync"]:
        packages.append(site.data["base_time_sync"])
    missing = [p for p in packages if not site.host.package(p).is_installed]
    assert not missing, f"{site.name}: packages not installed: {missing}"


def test_kernel_and_limit_files(site: Site) -> None:
    _file(site, SYSCTL_FILE, 0o644, sysctl_text(dict(site.data["base_sysctl"])))
    if site.data["base_memlock_unlimited"]:
        _file(site, MEMLOCK_FILE, 0o644, render("base", "memlock.conf"))
    if site.vendor == "nvidia" and site.data["base_blacklist_nouveau"]:
        _file(site, NOUVEAU_FILE, 0o644, render("base", "blacklist-nouveau.conf"))


def test_docker_runs_with_the_planned_daemon_json(site: Site) -> None:
    docker = site.host.service("docker")
    assert docker.is_running, f"{site.name}: docker is not running"
    _file(site, "/etc/docker/daemon.json", 0o644)
    daemon = json.loads(site.host.file("/etc/docker/daemon.json").content_string)
    for key, value in daemon_settings(SimpleNamespace(**site.data)).items():
        assert daemon.get(key) == value, f"{site.name}: daemon.json {key} = {daemon.get(key)!r}"
    info = json.loads(site.host.check_output("docker info --format '{{json .Runtimes}}'"))
    if site.vendor == "nvidia":
        assert daemon.get("default-runtime") == "nvidia" and "nvidia" in daemon["runtimes"]
        assert "nvidia" in info, f"{site.name}: dockerd has not registered the nvidia runtime"


def test_nvidia_stack(site: Site) -> None:
    if site.vendor != "nvidia":
        pytest.skip(f"{site.name} is a {site.vendor} node (Plan)")
    branch = site.data["nvidia_driver_branch"]
    utils = f"nvidia-utils-{branch}-server"
    drivers = [f"nvidia-driver-{branch}-server-open", f"nvidia-driver-{branch}-server"]
    installed = [d for d in drivers if site.host.package(d).is_installed]
    assert len(installed) == 1, f"{site.name}: driver packages installed: {installed}"
    assert _held(site, installed[0]) and _held(site, utils), f"{site.name}: driver not held"
    pinned = site.data["nvidia_driver_version"]  # the exact build, not only the branch
    for package in (installed[0], utils):
        version = site.host.package(package).version
        assert version == pinned, f"{site.name}: {package} {version}, pinned {pinned}"
    for key in (
        "nvidia_cuda_toolkit_package",
        "nvidia_dcgm_package",
        "nvidia_container_toolkit_package",
    ):
        assert site.host.package(site.data[key]).is_installed, f"{site.name}: {site.data[key]}"
    gpus = site.host.check_output("nvidia-smi -L").splitlines()
    assert len(gpus) == site.node.accelerator.count, f"{site.name}: {len(gpus)} GPUs"
    if re.search(r"Bridge \[0680\]: NVIDIA", _lspci(site)):  # NVSwitches on the board
        fabric = f"nvidia-fabricmanager-{branch}"
        assert site.host.package(fabric).is_installed and _held(site, fabric)
        assert site.host.service("nvidia-fabricmanager").is_running


def test_ascend_stack(site: Site) -> None:
    if site.vendor != "ascend":
        pytest.skip(f"{site.name} is a {site.vendor} node (Plan)")
    info = site.host.check_output("npu-smi info")
    rows = re.findall(r"^\|\s*\d+\s+\S+\s+\|\s*(OK|Warning|Alarm|Critical)", info, re.M)
    assert len(rows) == site.node.accelerator.count, f"{site.name}: npu-smi lists {len(rows)}"
    for device, address in enumerate(site.node.npu.device_ips):
        out = site.host.check_output(f"hccn_tool -i {device} -ip -g")
        assert f"ipaddr:{address}" in out, f"{site.name}: NPU {device}: {out}"
        tls = site.host.check_output(f"hccn_tool -i {device} -tls -g")
        want = int(site.plan.context.npu_tls)
        assert f"tls switch[{want}]" in tls, f"{site.name}: NPU {device} TLS: {tls}"


def test_vastai_stack(site: Site) -> None:
    if site.vendor != "vastai":
        pytest.skip(f"{site.name} is a {site.vendor} node (Plan)")
    dies = [line for line in site.host.check_output("vasmi list").splitlines() if "VA16" in line]
    assert len(dies) == site.node.accelerator.count * 4, f"{site.name}: {len(dies)} dies"


def test_fabric(site: Site) -> None:
    if "Infiniband controller" not in _lspci(site):
        pytest.skip(f"{site.name} has no InfiniBand/RoCE HCA")
    assert site.host.package("infiniband-diags").is_installed
    states = re.findall(r"^\s*State: (\S+)", site.host.check_output("ibstat"), re.M)
    assert states and set(states) == {"Active"}, f"{site.name}: IB port states {states}"


def test_serving_state(site: Site, serving: bool) -> None:
    if not serving:
        pytest.skip("serving not expected (pass --serving)")
    _file(site, site.plan.context.secrets_env_file, 0o600)
    for planned in site.launch.files:
        _file(site, planned.path, int(planned.mode, 8))
    for container in site.launch.containers:  # a Dynamo node runs several
        name = container.name
        status = site.host.run(
            "docker inspect --format '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}' " + name
        )
        assert status.rc == 0, f"{site.name}: no container {name}"
        assert status.stdout.split() == ["running", "unless-stopped"], (
            f"{site.name}: {name}: {status.stdout}"
        )


def test_weights_in_place(site: Site, serving: bool) -> None:
    if not serving:
        pytest.skip("serving not expected (pass --serving)")
    path = site.plan.context.weights_path
    for name in ("config.json", "ironserve-manifest.json", "SHA256SUMS"):
        assert site.host.file(f"{path}/{name}").is_file, f"{site.name}: {path}/{name} missing"
    check = site.host.run(f"cd {path} && sha256sum -c --quiet SHA256SUMS")
    assert check.rc == 0, f"{site.name}: weights differ from their sums: {check.stdout}"
