"""Data keys of roles/base (role-prefixed; None = must be given)."""

from typing import Literal

from pydantic import Field, StrictInt

from ironserve.config.values import Flag, Line, PackageName, SysctlKey
from ironserve.deploy.role_data import RoleData

SYSCTL: dict[str, int | str] = {
    "vm.max_map_count": 1048576,
    "fs.inotify.max_user_watches": 524288,
    "kernel.numa_balancing": 0,
    "net.core.somaxconn": 4096,
}


class BaseData(RoleData):
    # Installed when missing (apt-get update only then).
    base_packages: list[PackageName] = Field(
        default_factory=lambda: [
            "ca-certificates",
            "curl",
            "gnupg",
            "iproute2",
            "kmod",
            "pciutils",
            "procps",
        ]
    )
    # Written to /etc/sysctl.d/90-ironserve.conf.
    base_sysctl: dict[SysctlKey, StrictInt | Line] = Field(default_factory=lambda: dict(SYSCTL))
    # Apply the sysctl file now (False where the kernel is not ours to set: containers).
    base_sysctl_apply: Flag = True
    # Lift the locked-memory limit (ironserve.rules.limits: what counts as enough).
    base_memlock_unlimited: Flag = True
    # chrony, systemd-timesyncd, or None to leave time sync alone (e.g. containers).
    base_time_sync: Literal["chrony", "systemd-timesyncd"] | None = "chrony"
    # On NVIDIA nodes.
    base_blacklist_nouveau: Flag = True


DEFAULTS = BaseData.defaults()
