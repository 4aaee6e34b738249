"""The lab's images, built locally and cached by a content hash of what goes into them.

- base: a Debian bookworm root filesystem made by ``debootstrap --variant=minbase`` and imported
  (``docker import``); rebuilt only when the suite, mirror or package list changes.
- node: the base plus systemd (PID 1 of full nodes), sshd (key auth, one ed25519 host key given
  per node), a Docker engine of the node's own (a systemd unit, as on a server; light nodes run
  sshd alone under tini), pciutils and the hardware simulators' sources under
  /usr/lib/ironserve-sim/sim (off the PATH: no vendor tool before provisioning), dmesg and
  journalctl -k reading the node's simulated kernel log.

Nothing here touches a running lab; ``cluster`` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironserve.weights import client_lock

SUITE = "bookworm"
BASE_PACKAGES = (
    "openssh-server",
    "python3",
    "ca-certificates",
    "curl",
    "iproute2",
    "iputils-ping",
    "sudo",
    "gnupg",
    "kmod",
    "procps",
    "pciutils",
    "tini",
    "less",
)
# The node's own Docker engine (full mode) and what provisioning expects on a fresh server.
NODE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "docker.io",
    "iptables",
    "nftables",  # Debian's default firewall; roles/firewall loads its table with it
    "e2fsprogs",
    "util-linux",
    "xz-utils",
    # weights (issue 5): fan-out between nodes and the venv of the hub clients
    "rsync",
    "python3-venv",
)
# The hub clients a node downloads weights with (roles/weights installs them when missing; the
# lab bakes them so no test needs PyPI), from the lock roles/weights installs from
# (ironserve.weights.client_lock): a lab build proves it complete and its hashes right.
HUB_CLIENT_VENV = "/opt/ironserve/hub-client"
# bookworm's glibc is 2.36: the manylinux wheels its python3 takes, newest first.
NODE_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
# Timers a real server has that only make noise (and CPU spikes) on 16 nodes sharing 2 cores.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
    "getty@tty1.service",
    "console-getty.service",
)

IMAGE_LABEL = "ironserve.lab.image"  # images are a cache: `lab down` keeps them
BASE_REPO = "ironserve-lab-base"
NODE_REPO = "ironserve-lab-node"
SIM_SOURCE = Path(__file__).resolve().parent / "sim"
SIM_LIB = "/usr/lib/ironserve-sim"  # where the ironserve-sim-base package puts it too
SIM_DEST = f"{SIM_LIB}/sim"  # off the PATH; importable as `sim`

# Full nodes boot systemd (PID 1: sshd, docker and containerd are its units, as on a server).
# Light nodes run this instead, under tini: sshd alone.
NODE_INIT = r"""#!/bin/bash
# ironserve lab light node (under tini): sshd only.
mkdir -p /run/sshd /data
exec /usr/sbin/sshd -D -e
"""

# Lab plumbing, not vendor tools: the fault and kernel-log commands (as ironserve-sim-base
# installs them), and dmesg/journalctl -k reading the node's simulated kernel log (containers
# share the host's kernel, whose log is not the node's).
WRAPPERS = {
    "/usr/sbin/ironserve-sim-fault": f'#!/bin/sh\nexec python3 {SIM_DEST}/faults.py "$@"\n',
    "/usr/sbin/ironserve-sim-kernlog": f'#!/bin/sh\nexec python3 {SIM_DEST}/kernlog.py "$@"\n',
    "/usr/bin/dmesg": f"#!/bin/sh\n# ironserve lab: the simulated kernel log\n"
    f'exec python3 {SIM_DEST}/kernlog.py "$@"\n',
    "/usr/bin/journalctl": "#!/bin/sh\n# ironserve lab: -k/--dmesg read the simulated kernel log\n"
    'for a in "$@"; do case "$a" in --dmesg) k=1;; --*) ;; -*k*) k=1;; esac; done\n'
    f'[ -n "${{k:-}}" ] && exec python3 {SIM_DEST}/kernlog.py --journal\n'
    'exec /usr/bin/journalctl.distrib "$@"\n',
}

SSHD_CONFIG = """# ironserve lab: root by key only, one host key given by the lab (known_hosts
# is written from it), no DNS lookups (fast logins on 48 nodes).
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 100:30:200
MaxSessions 50
"""

NODE_DOCKERFILE = """FROM {base}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get -o Acquire::Check-Valid-Until=false update -qq \\
 && apt-get install -y -qq --no-install-recommends {packages} >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_* \\
 && rm -f /etc/apt/apt.conf.d/docker-clean \\
 && systemctl mask {masked} >/dev/null 2>&1 \\
 && systemctl enable ssh.service docker.service >/dev/null 2>&1 \\
 && : > /etc/machine-id \\
 && echo LANG=C.UTF-8 > /etc/default/locale
COPY wheels /tmp/hub-wheels
COPY hub-client.txt /tmp/hub-client.txt
RUN python3 -m venv {hub_venv} \\
 && {hub_venv}/bin/pip install -q --require-hashes --no-index \\
    --find-links /tmp/hub-wheels -r /tmp/hub-client.txt >/dev/null \\
 && {hub_venv}/bin/pip check >/dev/null \\
 && rm -rf /tmp/hub-wheels /tmp/hub-client.txt
COPY sshd_config /etc/ssh/sshd_config.d/ironserve-lab.conf
COPY node-init /usr/local/sbin/ironserve-node-init
COPY sim {sim_dest}
RUN dpkg-divert --quiet --local --rename --add /usr/bin/dmesg \\
 && dpkg-divert --quiet --local --rename --add /usr/bin/journalctl
COPY wrappers/ /
RUN chmod 0755 /usr/local/sbin/ironserve-node-init \\
 && mkdir -p /root/.ssh /etc/ironserve-sim /var/lib/ironserve-sim /data \\
 && chmod 0700 /root/.ssh
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/sbin/ironserve-node-init"]
"""


@dataclass(frozen=True)
class Images:
    base: str
    node: str


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _sim_files() -> Iterator[tuple[str, bytes]]:
    if not SIM_SOURCE.is_dir():
        return
    for path in sorted(SIM_SOURCE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path.relative_to(SIM_SOURCE).as_posix(), path.read_bytes()


def mirror() -> str | None:
    """The Debian archive debootstrap reads: $IRONSERVE_LAB_MIRROR, else the one this machine's
    own apt configuration uses (the nodes' apt then uses it too)."""
    from ironserve.lab.host import apt_mirror

    return os.environ.get("IRONSERVE_LAB_MIRROR") or apt_mirror(SUITE)


def base_tag() -> str:
    recipe = json.dumps([SUITE, mirror() or "", "minbase", sorted(BASE_PACKAGES), 1])
    return f"{BASE_REPO}:{_digest(recipe)}"


def node_tag(base: str) -> str:
    files = [part for name, data in _sim_files() for part in (name, data)]
    recipe = _digest(
        base,
        NODE_DOCKERFILE,
        " ".join(NODE_PACKAGES + MASKED_UNITS),
        HUB_CLIENT_VENV,
        client_lock.packaged(),
        NODE_INIT,
        SSHD_CONFIG,
        json.dumps(WRAPPERS, sort_keys=True),
    )
    return f"{NODE_REPO}:{_digest(recipe, *files)}"


def exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_base(client: Any, tag: str) -> None:
    """debootstrap into a scratch folder, stream it as a tar into ``docker import``."""
    from ironserve.lab.host import which

    if which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: run `ironserve lab setup`")
    source = mirror()
    if source is None:
        raise RuntimeError(
            f"no Debian archive for {SUITE} in this machine's apt sources: set IRONSERVE_LAB_MIRROR"
        )
    scratch = Path(tempfile.mkdtemp(prefix="ironserve-lab-rootfs-", dir="/var/tmp"))
    rootfs = scratch / "rootfs"
    try:
        _log(f"debootstrap {SUITE} from {source} (about a minute)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                source,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # A docker-style apt: no cache kept, no recommends; sources for later `apt-get update`.
        (rootfs / "etc/apt/apt.conf.d/90ironserve-lab").write_text(
            'APT::Install-Recommends "false";\nAcquire::Check-Valid-Until "false";\n'
        )
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        archive = scratch / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        repository, version = tag.split(":")
        _log(f"docker import {tag}")
        client.api.import_image_from_file(
            str(archive),
            repository=repository,
            tag=version,
            changes=[f"LABEL {IMAGE_LABEL}=base", 'CMD ["/bin/bash"]'],
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def hub_wheels(lock: str) -> Path:
    """Wheels of the hub clients for the node's Python (bookworm: CPython 3.11, x86_64), as the
    lock pins them, fetched on this machine by its own pip (its index, proxy and CA settings;
    ``--require-hashes``: a file whose sha256 the lock lacks is refused here already): the image
    build itself needs no network. The folder (named by the lock's content) is kept."""
    folder = Path(tempfile.gettempdir()) / f"ironserve-hub-wheels-{_digest(lock)}"
    if not (folder / "complete").exists():
        folder.mkdir(exist_ok=True)
        env = client_lock.LAB_NODE_ENV
        requirements = folder / "requirements.txt"
        requirements.write_text(client_lock.requirements_for(client_lock.parse(lock), env))
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "-q", "-d", str(folder)),
                *("--require-hashes", "--no-deps", "--only-binary=:all:"),
                *("--python-version", env["python_version"], "--implementation", "cp"),
                *(arg for platform in NODE_PLATFORMS for arg in ("--platform", platform)),
                *("-r", str(requirements)),
            ],
            check=True,
        )
        (folder / "complete").touch()
    return folder


def _context(base: str) -> io.BytesIO:
    files: dict[str, tuple[bytes, int]] = {
        "Dockerfile": (
            NODE_DOCKERFILE.format(
                base=base,
                packages=" ".join(NODE_PACKAGES),
                masked=" ".join(MASKED_UNITS),
                sim_dest=SIM_DEST,
                hub_venv=HUB_CLIENT_VENV,
            ).encode(),
            0o644,
        ),
        "node-init": (NODE_INIT.encode(), 0o755),
        "sshd_config": (SSHD_CONFIG.encode(), 0o644),
        "sim/README": (b"ironserve hardware simulators (installed by provisioning)\n", 0o644),
    }
    for path, text in WRAPPERS.items():
        files[f"wrappers{path}"] = (text.encode(), 0o755)
    for name, data in _sim_files():
        files[f"sim/{name}"] = (data, 0o755 if data.startswith(b"#!") else 0o644)
    lock = client_lock.packaged()
    files["hub-client.txt"] = (lock.encode(), 0o644)
    for wheel in sorted(hub_wheels(lock).glob("*.whl")):
        files[f"wheels/{wheel.name}"] = (wheel.read_bytes(), 0o644)
    return tar_context(files)


def tar_context(files: dict[str, tuple[bytes, int]], mtime: int = 0) -> io.BytesIO:
    """A tar archive in memory (a build context, or files for put_archive): name -> (content,
    mode). A build context keeps mtime 0, so the same files give the same cached layers."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build_node(client: Any, base: str, tag: str) -> None:
    """The legacy builder through the SDK, from an in-memory context (cached layers reused)."""
    _log(f"building {tag} (docker.io, sshd) on {base}")
    stream = client.api.build(
        fileobj=_context(base),
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        pull=False,
        labels={IMAGE_LABEL: "node"},
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error']}")


@contextlib.contextmanager
def build_lock(what: str = "build") -> Iterator[None]:
    """One image build (or, with ``what="push"``, one push into the shared registry storage)
    at a time on this machine: labs brought up side by side (parallel test processes, two
    shells) wait for the first instead of repeating it. Not re-entrant: hold one per name."""
    path = Path(tempfile.gettempdir()) / f"ironserve-lab-{what}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_images(client: Any) -> Images:
    """The base and node images, built only when their content hash is not yet an image."""
    base = base_tag()
    node = node_tag(base)
    if exists(client, base) and exists(client, node):
        return Images(base=base, node=node)
    with build_lock():
        if not exists(client, base):
            build_base(client, base)
        if not exists(client, node):
            build_node(client, base, node)
            _prune(client, keep={base, node})
    return Images(base=base, node=node)


def _prune(client: Any, keep: set[str]) -> None:
    """Drop the lab's older node images (the simulators changed); ones in use stay."""
    import docker.errors

    for image in client.images.list(name=NODE_REPO):
        for tag in image.tags:
            if tag not in keep:  # one a container of a running lab still uses stays
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag)


def remove_images(client: Any) -> list[str]:
    """Every image the lab built (``lab down --images``)."""
    removed = []
    for image in client.images.list(filters={"label": IMAGE_LABEL}):
        for tag in image.tags or [image.id]:
            client.images.remove(tag, force=True)
            removed.append(tag)
    return removed
