"""Data keys of roles/preflight (role-prefixed; None = must be given)."""

from pydantic import Field

from ironserve.config.values import Margin, Name, NonNegative, Version
from ironserve.deploy.role_data import RoleData
from ironserve.rules.disk import DISK_MARGIN
from ironserve.rules.limits import SHM_MIN_BYTES


class PreflightData(RoleData):
    # Free space for the weights: the plan's weights_bytes times this, less what is present
    # (ironserve.rules.disk; health and roles/weights use the same margin).
    preflight_disk_margin: Margin = DISK_MARGIN
    # Distributions the roles support: ID (os-release, lower case) -> versions.
    preflight_distributions: dict[Name, list[Version]] = Field(
        default_factory=lambda: {
            "ubuntu": ["22.04", "24.04"],
            "debian": ["12", "13"],
        }
    )
    preflight_min_kernel: Version = "5.4"
    # /dev/shm below this is reported (engines get their own with --shm-size).
    preflight_min_shm_bytes: NonNegative = SHM_MIN_BYTES


DEFAULTS = PreflightData.defaults()
