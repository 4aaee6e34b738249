"""Data keys of roles/base (role-prefixed; None = must be given)."""

DEFAULTS = {
    # Installed when missing (apt-get update only then).
    "base_packages": ["ca-certificates", "curl", "gnupg", "iproute2", "kmod", "pciutils", "procps"],
    # Written to /etc/sysctl.d/90-ironserve.conf.
    "base_sysctl": {
        "vm.max_map_count": 1048576,
        "fs.inotify.max_user_watches": 524288,
        "kernel.numa_balancing": 0,
        "net.core.somaxconn": 4096,
    },
    # Apply the sysctl file now (False where the kernel is not ours to set: containers).
    "base_sysctl_apply": True,
    "base_memlock_unlimited": True,
    # chrony, systemd-timesyncd, or None to leave time sync alone (e.g. containers).
    "base_time_sync": "chrony",
    # On NVIDIA nodes.
    "base_blacklist_nouveau": True,
}
