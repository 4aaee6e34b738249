"""roles/vastai: a VA16 node ready for vllm_vacc.

1. IOMMU check (IommuEnabled fact): the driver refuses to run with an IOMMU translating DMA
   (VastModelZOO's compose entrypoint exits on dmesg's "iommu is enable"); a node with it on
   stops here, before any change, with the remedy.
2. The driver from ``vastai_driver_install_<version>.run install --setkernelhook``, downloaded
   from the artifact source (``vastai_installer_url``) and verified on the node against its
   sha256 in ``vastai_checksums`` before it reaches its path (a mismatch is refused, nothing
   installed), only when ``vasmi list`` does not report the pinned version.
3. The devices: ``vasmi list`` must show as many cards as the inventory's accelerator_count,
   read from facts when the driver was already there, checked on the node right after an
   install otherwise.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra import logger
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from ironserve.facts.host import IommuEnabled
from ironserve.operations import download
from ironserve.roles import FACT_TIMEOUT_S, artifact_sha256, plan_if_vendor
from ironserve.roles.vastai.defaults import DEFAULTS, DOWNLOADS

DRIVER_RUN = DOWNLOADS["driver"]["file"]
VASMI_LIST = "if command -v vasmi >/dev/null 2>&1; then vasmi list 2>&1; fi; true"
_VERSION_RE = re.compile(r"vasmi driver version:\s*(\S+)")
_DIE_RE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\S+")
IOMMU_REMEDY = (
    "disable the IOMMU in the kernel command line -- intel_iommu=off (Intel) or amd_iommu=off "
    "(AMD) in GRUB_CMDLINE_LINUX of /etc/default/grub, without iommu=pt -- then update-grub "
    "(or grub2-mkconfig), reboot the node and run again"
)

INSTALL_REFUSED = f"the Vastai driver refuses to run with the IOMMU on: {IOMMU_REMEDY}"


def parse_vasmi_list(output: str | None) -> tuple[str | None, int]:
    """(driver version, number of cards) from ``vasmi list``; (None, 0) without a driver."""
    text = output or ""
    version = _VERSION_RE.search(text)
    cards = {m.group(2) for m in map(_DIE_RE.match, text.splitlines()) if m}
    return (version.group(1) if version else None, len(cards))


def iommu_problem(iommu: Any) -> str | None:
    """The message for a node whose IOMMU is on; None when it is off (or cannot be read)."""
    if not iommu or not iommu.get("enabled"):
        return None
    flags = " ".join(iommu.get("cmdline_flags") or []) or "none"
    seen = "the driver logged 'iommu is enable'" if iommu.get("vastai_warning") else ""
    kernel = [line.split("] ", 1)[-1] for line in iommu.get("dmesg") or []]
    if kernel:
        logged = f"the kernel logged {kernel[0]!r}"
        seen = f"{seen}; {logged}" if seen else logged
    units = f"{iommu.get('sysfs_units', 0)} IOMMU units in /sys/class/iommu"
    return (
        f"{host.name}: the IOMMU is enabled ({units}; kernel flags: {flags}"
        f"{'; ' + seen if seen else ''}) and the Vastai driver refuses to run with it: "
        f"{IOMMU_REMEDY}"
    )


@deploy("Vastai VA16 driver", data_defaults=DEFAULTS)
def deploy_vastai() -> None:
    plan = plan_if_vendor(state, host, "vastai")
    if plan is None:
        return
    node = plan.node
    problem = iommu_problem(host.get_fact(IommuEnabled, _timeout=FACT_TIMEOUT_S))
    if problem:
        raise DeployError(problem)
    version = str(host.data.get("vastai_driver_version"))
    cards = node.accelerator.count
    current, present = parse_vasmi_list(
        host.get_fact(Command, command=VASMI_LIST, _timeout=FACT_TIMEOUT_S)
    )
    if current == version:
        if present < cards:
            raise DeployError(
                f"{host.name}: vasmi lists {present} Vastai cards, the inventory says {cards}: "
                "reseat or replace the missing cards, or fix accelerator_count"
            )
        logger.info(f"{host.name}: Vastai driver {version} is installed, {present} cards")
        return
    url = host.data.get("vastai_installer_url")
    if not url:
        raise DeployError(
            f"{host.name}: vastai_installer_url must be given (the folder that holds "
            f"{DRIVER_RUN.format(version=version)}; Vastai publishes no download URL)"
        )
    directory = host.data.get("vastai_download_dir")
    run_file = DRIVER_RUN.format(version=version)
    path = f"{directory}/{run_file}"
    sha256 = artifact_sha256(host, "vastai", "driver", version)
    files.directory(name="Create the Vastai download folder", path=directory)
    download.verified(
        name="Download the Vastai driver installer (sha256 checked)",
        src=str(url).rstrip("/") + "/" + run_file,
        dest=path,
        artifact=run_file,
        sha256=sha256,
        mode="0755",
    )
    install = server.shell(
        name="Install the Vastai driver",
        # The IommuEnabled fact cannot see every IOMMU (e.g. one only dmesg reports): the
        # installer's own refusal gets the remedy too.
        commands=[
            f'out=$({shlex.quote(path)} install --setkernelhook 2>&1); rc=$?; echo "$out"; '
            f'if [ $rc -ne 0 ] && echo "$out" | grep -qi "iommu is enable"; then '
            f"echo {shlex.quote(INSTALL_REFUSED)} >&2; fi; "
            "exit $rc"
        ],
    )
    server.shell(
        name="Check that the Vastai devices are present",
        commands=[
            f"n=$(vasmi list | awk '$1 ~ /^[0-9]+$/ {{print $2}}' | sort -u | wc -l); "
            f'[ "$n" -ge {cards} ] || {{ echo "vasmi lists $n Vastai cards after the driver '
            f'install, the inventory says {cards}" >&2; exit 1; }}'
        ],
        _if=install.did_change,
    )
