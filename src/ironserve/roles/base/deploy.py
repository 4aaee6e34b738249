"""roles/base: OS packages, sysctl, memlock unlimited, time sync, nouveau blacklisted."""

from __future__ import annotations

from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.operations import files, server, systemd

from ironserve.operations import apt
from ironserve.operations.templates import render
from ironserve.roles import vendor_of
from ironserve.roles.base.defaults import DEFAULTS

SYSCTL_FILE = "/etc/sysctl.d/90-ironserve.conf"
MEMLOCK_FILE = "/etc/security/limits.d/90-ironserve-memlock.conf"
NOUVEAU_FILE = "/etc/modprobe.d/ironserve-blacklist-nouveau.conf"
TIME_SYNC_SERVICES = {"chrony": "chrony", "systemd-timesyncd": "systemd-timesyncd"}


def sysctl_text(settings: dict[str, object]) -> str:
    return render("base", "sysctl.conf", settings=settings)


@deploy("Base OS", data_defaults=DEFAULTS)
def deploy_base() -> None:
    time_sync = host.data.base_time_sync
    if time_sync is not None and time_sync not in TIME_SYNC_SERVICES:
        raise DeployError(
            f"{host.name}: base_time_sync must be chrony, systemd-timesyncd or None, "
            f"not {time_sync!r}"
        )
    packages = list(host.data.base_packages)
    if time_sync is not None:
        packages.append(time_sync)
    apt.packages(name="Install base packages", packages=packages)

    sysctl = files.put(
        name="Write kernel settings",
        src=StringIO(sysctl_text(dict(host.data.base_sysctl))),
        dest=SYSCTL_FILE,
        mode="644",
    )
    # Conditional steps are only added when their trigger will change, so a converged node
    # shows nothing at all under --dry.
    if host.data.base_sysctl_apply and sysctl.will_change:
        server.shell(
            name="Apply kernel settings",
            commands=[f"sysctl -p {SYSCTL_FILE}"],
            _if=sysctl.did_change,
        )

    if host.data.base_memlock_unlimited:
        files.put(
            name="Lift the locked-memory limit",
            src=StringIO(render("base", "memlock.conf")),
            dest=MEMLOCK_FILE,
            mode="644",
        )

    if time_sync is not None:
        systemd.service(
            name="Run time synchronisation",
            service=TIME_SYNC_SERVICES[time_sync],
            running=True,
            enabled=True,
        )

    if host.data.base_blacklist_nouveau and vendor_of(state, host) == "nvidia":
        blacklist = files.put(
            name="Blacklist nouveau",
            src=StringIO(render("base", "blacklist-nouveau.conf")),
            dest=NOUVEAU_FILE,
            mode="644",
        )
        if blacklist.will_change:
            server.shell(
                name="Rebuild the initramfs without nouveau",
                commands=[
                    "if command -v update-initramfs >/dev/null 2>&1; then update-initramfs -u; fi"
                ],
                _if=blacklist.did_change,
            )
