"""Data keys of roles/preflight (role-prefixed; None = must be given)."""

DEFAULTS = {
    # Free space needed for the weights: the plan's weights_bytes times this margin.
    "preflight_disk_margin": 1.1,
    # Distributions the roles support: ID (os-release, lower case) -> versions.
    "preflight_distributions": {"ubuntu": ["22.04", "24.04"], "debian": ["12", "13"]},
    "preflight_min_kernel": "5.4",
    # /dev/shm below this is reported (engines get their own with --shm-size).
    "preflight_min_shm_bytes": 64 * 1024**2,
}
