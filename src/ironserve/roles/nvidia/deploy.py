"""roles/nvidia: vendor repository (NVIDIA's key verified by its fingerprint on the node before
apt may use it), driver (pinned branch and exact apt version ``nvidia_driver_version``, open or
proprietary modules, held), CUDA toolkit, container toolkit, fabric manager (NVSwitch only; the
driver's exact version, held), persistence mode, DCGM; a reboot only when the driver changed and
only where allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from io import StringIO
from typing import Any

from pyinfra import logger
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.facts.server import Arch, LinuxDistribution
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files, server, systemd

from ironserve.facts.host import PciDevices
from ironserve.facts.nvidia import NvSwitchPresent
from ironserve.operations import apt, download, nvidia
from ironserve.operations.apt import DebSelections
from ironserve.operations.templates import render
from ironserve.roles import FACT_TIMEOUT_S, is_control_machine, require
from ironserve.roles.nvidia.defaults import DEFAULTS, NvidiaData
from ironserve.rules.fabric import fabric_manager_wanted

SOURCE_LIST = "/etc/apt/sources.list.d/ironserve-nvidia.list"
CUDA_KEYRING = "/usr/share/keyrings/ironserve-nvidia-cuda.asc"
CUDA_REPO = "https://developer.download.nvidia.com/compute/cuda/repos/{repo}/{arch}/"
# First PCI device id of the Turing generation: open kernel modules support Turing and newer.
FIRST_TURING_DEVICE = 0x1E00
DCGM_UNIT = "nvidia-dcgm.service"


def cuda_repo(distro: Mapping[str, Any], arch: str) -> tuple[str, str]:
    """NVIDIA's CUDA repository path parts for a distribution: ("ubuntu2404", "x86_64")."""
    meta = distro.get("release_meta") or {}
    ident = str(meta.get("ID") or distro.get("name") or "").lower()
    version = str(meta.get("VERSION_ID") or distro.get("major") or "").replace(".", "")
    return f"{ident}{version}", "sbsa" if arch in ("aarch64", "arm64") else "x86_64"


def source_line(setting: str, distro: Mapping[str, Any], arch: str) -> tuple[str, str | None]:
    """The apt line for ``nvidia_apt_source`` and the key URL it needs (None: none)."""
    if setting != "cuda":
        return setting, None
    repo, repo_arch = cuda_repo(distro, arch)
    url = CUDA_REPO.format(repo=repo, arch=repo_arch)
    return f"deb [signed-by={CUDA_KEYRING}] {url} /", repo


def open_modules(setting: Any, pci: Sequence[Mapping[str, Any]]) -> bool:
    """Open kernel modules unless a GPU older than Turing is present (or the data says)."""
    if isinstance(setting, bool):
        return setting
    gpus = [
        d for d in pci if d.get("vendor_id") == "10de" and d.get("class_id") in ("0300", "0302")
    ]
    return all(int(d["device_id"], 16) >= FIRST_TURING_DEVICE for d in gpus if d["device_id"])


def driver_packages(branch: str, open_flavour: bool) -> tuple[str, str]:
    suffix = "-open" if open_flavour else ""
    return f"nvidia-driver-{branch}-server{suffix}", f"nvidia-utils-{branch}-server"


def pinned(packages: tuple[str, ...], version: str) -> list[str]:
    """``package=version`` specs: apt installs exactly that version, or fails."""
    return [f"{package}={version}" for package in packages]


@deploy("NVIDIA driver and tools", data_defaults=DEFAULTS)
def deploy_nvidia() -> None:
    branch = str(require(host, "nvidia_driver_branch"))
    distro = host.get_fact(LinuxDistribution, _timeout=FACT_TIMEOUT_S)
    arch = host.get_fact(Arch, _timeout=FACT_TIMEOUT_S) or "x86_64"
    line, key_repo = source_line(str(require(host, "nvidia_apt_source")), distro, arch)
    if key_repo is not None:
        download.verified(
            name="Fetch the NVIDIA repository key (fingerprint checked)",
            src=str(host.data.nvidia_apt_key_url).format(
                repo=key_repo, arch=cuda_repo(distro, arch)[1]
            ),
            dest=CUDA_KEYRING,
            artifact="the NVIDIA CUDA repository key",
            fingerprint=str(require(host, "nvidia_apt_key_fingerprint")),
            mode="644",
        )
    files.put(
        name="Add the NVIDIA apt repository",
        src=StringIO(render("nvidia", "apt-source.list", line=line, description="NVIDIA packages")),
        dest=SOURCE_LIST,
        mode="644",
    )

    pci = host.get_fact(PciDevices, _timeout=FACT_TIMEOUT_S)
    driver, utils = driver_packages(branch, open_modules(host.data.nvidia_driver_open_modules, pci))
    installed = host.get_fact(DebSelections, _timeout=FACT_TIMEOUT_S)
    other = driver_packages(branch, not driver.endswith("-open"))[0]
    if other in installed and installed[other]["installed"]:
        raise DeployError(
            f"{host.name}: {other} is installed but this node needs {driver} (open kernel "
            "modules for Turing and newer, proprietary for older): remove it first, or set "
            "nvidia_driver_open_modules to keep it"
        )
    driver_op = apt.packages(
        name="Install the NVIDIA driver (pinned version, held)",
        packages=pinned((driver, utils), str(require(host, "nvidia_driver_version"))),
        source_list=SOURCE_LIST,
        hold=True,
    )
    apt.packages(
        name="Install the CUDA toolkit, DCGM and the container toolkit",
        packages=[
            str(host.data.nvidia_cuda_toolkit_package),
            str(host.data.nvidia_dcgm_package),
            str(host.data.nvidia_container_toolkit_package),
        ],
        source_list=SOURCE_LIST,
    )

    setting = NvidiaData.of(host).nvidia_fabricmanager
    nvswitch = (
        host.get_fact(NvSwitchPresent, _timeout=FACT_TIMEOUT_S) if setting == "auto" else None
    )
    if fabric_manager_wanted(setting, nvswitch):
        nvidia.fabricmanager(
            name="Install the fabric manager at the driver's version (held)",
            branch=branch,
            driver_package=driver,
            source_list=SOURCE_LIST,
        )
        systemd.service(
            name="Run the fabric manager",
            service="nvidia-fabricmanager",
            running=True,
            enabled=True,
        )

    if host.data.nvidia_persistence_mode:
        nvidia.persistence_mode(name="Enable GPU persistence mode")

    _dcgm_service()

    if host.data.nvidia_driver_reboot:
        if driver_op.will_change and is_control_machine(host):
            raise DeployError(
                f"{host.name}: the driver changes and nvidia_driver_reboot is set, but this is "
                "the control machine: set nvidia_driver_reboot=False and reboot it yourself"
            )
        if driver_op.will_change:
            server.reboot(name="Reboot to load the new driver", _if=driver_op.did_change)
    elif driver_op.will_change:
        logger.info(f"{host.print_prefix}driver changes; nvidia_driver_reboot is off: no reboot")


def _dcgm_service() -> None:
    """Start DCGM's host engine where the package ships its unit; packages that run DCGM
    embedded (no unit) are left as they are."""
    package = str(host.data.nvidia_dcgm_package)
    installed = host.get_fact(DebSelections, _timeout=FACT_TIMEOUT_S)
    running = host.get_fact(SystemdStatus, _timeout=FACT_TIMEOUT_S).get(DCGM_UNIT)
    enabled = host.get_fact(SystemdEnabled, _timeout=FACT_TIMEOUT_S).get(DCGM_UNIT)
    if package in installed and installed[package]["installed"] and running is None:
        return  # installed, and no unit: nothing to run
    if running and enabled:
        return
    server.shell(
        name="Run the DCGM host engine where its unit exists",
        commands=[
            f"if systemctl cat {DCGM_UNIT} >/dev/null 2>&1; then "
            f"systemctl enable --now {DCGM_UNIT}; fi"
        ],
    )
