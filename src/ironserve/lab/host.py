"""The machine the lab runs on: what it needs, checked (`lab doctor`) and set up (`lab setup`).

One list of prerequisites serves every entry point (`make demo`, `make test`, `ironserve lab up`,
.ci/run): the Debian packages whose commands the lab and its tests run on this machine, root, and
a Docker engine. Setup installs the missing packages with apt-get and, when no engine answers,
starts one of its own (its own data root and pidfile, in a session of its own so the lab outlives
the command); `stop_engine` stops only that one. Nothing is changed before every problem that
setup cannot fix (not Debian, not root) is known.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Where a command lives when root's PATH is not the caller's (mkfs.ext4, dockerd are in sbin).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SEARCH_PATH = f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}"


@dataclass(frozen=True)
class HostPackage:
    package: str  # the Debian package
    command: str  # a command it provides: its presence is the check
    purpose: str
    tests_only: bool = False  # only `make test` needs it


PACKAGES = (
    HostPackage("docker.io", "dockerd", "the Docker engine the lab's nodes run on"),
    HostPackage("debootstrap", "debootstrap", "builds the nodes' Debian root filesystem"),
    HostPackage("dpkg-dev", "dpkg-scanpackages", "indexes the lab's apt repository"),
    HostPackage("e2fsprogs", "mkfs.ext4", "formats each full node's /data disk"),
    HostPackage("openssh-client", "ssh", "runs weights fan-out and runbook commands from here"),
    HostPackage("ruby", "ruby", "checks the Vagrantfile's syntax", tests_only=True),
)

# The engine `lab setup` starts when none answers; `stop_engine` stops this one and no other.
ENGINE_SOCKET = Path("/var/run/docker.sock")
ENGINE_DATA_ROOT = Path(os.environ.get("IRONSERVE_LAB_DOCKER_ROOT", "/var/lib/ironserve-docker"))
ENGINE_PIDFILE = Path("/run/ironserve-lab-dockerd.pid")
ENGINE_LOG = Path("/var/log/ironserve-lab-dockerd.log")
ENGINE_START_TIMEOUT = 60.0
MIN_ENGINE_VERSION = (20, 10)  # cgroup namespaces and the API the docker SDK 7 speaks
ENGINE_STOP_TIMEOUT = 30.0

# Linux capabilities the nodes are given (cap_add ALL less SYS_RESOURCE): the ones their systemd,
# nested dockerd, loop-mounted /data and network namespaces cannot do without.
NODE_CAPABILITIES = {
    "CAP_SYS_ADMIN": 21,
    "CAP_NET_ADMIN": 12,
    "CAP_MKNOD": 27,
    "CAP_SYS_PTRACE": 19,
    "CAP_NET_RAW": 13,
    "CAP_SETFCAP": 31,
}

# Sizing of a lab (measured with `ironserve lab status --memory` and `docker system df` on the
# 2-core machine; see docs/lab.md): memory per node and the disk the images and a node take.
# A labgpu node serves the real vLLM (PSS 1.5-2.1 GiB per node, node 0 the most).
NODE_MEMORY_MIB = {"full": 300, "light": 30, "labgpu": 2100}
IMAGES_DISK_MIB = 6500  # base, node, Ray, stand-in engine, registry and the real vLLM (2.5 GiB)
NODE_DISK_MIB = {"full": 400, "light": 20, "labgpu": 3000}  # a node pulls the real vLLM too
HEADROOM_MEMORY_MIB = 1024


class HostSetupError(Exception):
    """Setup cannot proceed on this machine (not Debian, not root, apt or dockerd failed)."""


# ---------------------------------------------------------------------------------------------
# Reading the machine


def which(command: str) -> str | None:
    return shutil.which(command, path=SEARCH_PATH)


def is_debian(os_release: Path = Path("/etc/os-release")) -> bool:
    """Debian or a derivative (ID or ID_LIKE says debian) with apt-get."""
    try:
        fields = dict(
            line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line
        )
    except OSError:
        return False
    ids = {fields.get("ID", "").strip('"')} | set(fields.get("ID_LIKE", "").strip('"').split())
    return "debian" in ids and which("apt-get") is not None


def is_root() -> bool:
    return os.geteuid() == 0


def missing_packages(*, tests: bool) -> list[HostPackage]:
    return [p for p in PACKAGES if (tests or not p.tests_only) and which(p.command) is None]


def engine_client() -> Any | None:
    """A docker SDK client that answers ($DOCKER_HOST or the default socket), or None."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException:
        return None
    return client


def apt_mirror(suite: str, apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The Debian archive this machine's apt uses, for debootstrap: the first `deb` source whose
    suites include ``suite``, else the first that is not a security, updates or backports one.
    Reads deb822 files (sources.list.d/*.sources) and one-line files (sources.list, *.list)."""
    entries: list[tuple[str, list[str]]] = []  # (uri, suites)
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        with contextlib.suppress(OSError):
            entries += _deb822_entries(path.read_text())
    for path in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        with contextlib.suppress(OSError):
            entries += _one_line_entries(path.read_text())
    for uri, suites in entries:
        if suite in suites:
            return uri
    plain = re.compile(r"-(security|updates|backports|proposed-updates)$|/updates$")
    for uri, suites in entries:
        if any(not plain.search(s) for s in suites) and "security" not in uri:
            return uri
    return None


def _deb822_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        entries += [(uri.rstrip("/"), suites) for uri in fields.get("uris", "").split()]
    return entries


def _one_line_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1].rstrip("/"), [words[2]]))
    return entries


def capabilities_missing(status: Path = Path("/proc/self/status")) -> list[str]:
    """The node capabilities absent from this process's bounding set (a container the machine
    itself runs in may lack some; Docker cannot give a node what its host does not have)."""
    try:
        line = next(x for x in status.read_text().splitlines() if x.startswith("CapBnd:"))
    except (OSError, StopIteration):
        return sorted(NODE_CAPABILITIES)
    bounding = int(line.split()[1], 16)
    return sorted(name for name, bit in NODE_CAPABILITIES.items() if not bounding >> bit & 1)


# ---------------------------------------------------------------------------------------------
# The doctor


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | missing | warn
    observed: str
    remedy: str = ""


def doctor(
    nodes: int = 3, light: bool = False, tests: bool = False, profile: str = "labgpu"
) -> list[Check]:
    """Every prerequisite of a lab of ``nodes`` nodes, each OK, missing (the lab cannot come up)
    or a warning (it comes up, with less), with the remedy."""
    from ironserve.lab import images

    setup = "ironserve lab setup"
    checks = [
        Check(
            "debian",
            "ok" if is_debian() else "missing",
            "Debian (apt-get)" if is_debian() else "not a Debian machine with apt-get",
            ""
            if is_debian()
            else "run the lab on Debian or Ubuntu, or install the packages "
            "below with this machine's package manager",
        ),
        Check(
            "root",
            "ok" if is_root() else "missing",
            f"uid {os.geteuid()}",
            ""
            if is_root()
            else "run as root: debootstrap and the nodes' loop-mounted disks need it",
        ),
    ]
    for p in PACKAGES:
        if p.tests_only and not tests:
            continue
        path = which(p.command)
        checks.append(
            Check(
                f"package {p.package}",
                "ok" if path else "missing",
                path or f"no {p.command}: it {p.purpose}",
                "" if path else f"{setup} (apt-get install {p.package})",
            )
        )
    client = engine_client()
    if client is None:
        checks.append(Check("docker engine", "missing", "no engine answers", setup))
    else:
        checks += _engine_checks(client)
    missing_caps = capabilities_missing()
    checks.append(
        Check(
            "node capabilities",
            "missing" if missing_caps else "ok",
            f"absent: {', '.join(missing_caps)}" if missing_caps else "all present",
            "run on a machine (or container) with these capabilities" if missing_caps else "",
        )
    )
    loop = Path("/dev/loop-control").exists()
    checks.append(
        Check(
            "loop devices",
            "ok" if loop or light else "warn",
            "/dev/loop-control" if loop else "no /dev/loop-control",
            ""
            if loop or light
            else "full nodes keep /data on their own filesystem (no disk-full fault)",
        )
    )
    mode = "light" if light else profile if profile in NODE_MEMORY_MIB else "full"
    need_mem = nodes * NODE_MEMORY_MIB[mode] + HEADROOM_MEMORY_MIB
    have_mem = _available_memory_mib()
    checks.append(
        Check(
            "memory",
            "ok" if have_mem >= need_mem else "missing",
            f"{have_mem} MiB available, {need_mem} MiB needed for {nodes} {mode} node(s)"
            + (" serving the real vLLM" if mode == "labgpu" else ""),
            "" if have_mem >= need_mem else "free memory or ask for fewer nodes (--nodes)",
        )
    )
    folder = ENGINE_DATA_ROOT if client is None else Path(_engine_root(client))
    have_disk = _free_mib(folder)
    unbuilt = (
        list(lab_images())
        if client is None
        else [role for role, tag in lab_images().items() if not images.exists(client, tag)]
    )
    built = not unbuilt
    need_disk = (0 if built else IMAGES_DISK_MIB) + nodes * NODE_DISK_MIB[mode]
    checks.append(
        Check(
            "disk",
            "ok" if have_disk >= need_disk else "missing",
            f"{have_disk} MiB free under {folder}, {need_disk} MiB needed",
            "" if have_disk >= need_disk else f"free space under {folder}",
        )
    )
    checks.append(
        Check(
            "lab images",
            "ok" if built else "warn",
            "built" if built else f"not built: {', '.join(unbuilt)}",
            "" if built else "`ironserve lab up` builds them (about 4 min, once)",
        )
    )
    return checks


def lab_images() -> dict[str, str]:
    """role -> tag of every image `lab up` builds (each a hash of what goes into it)."""
    from ironserve.lab import engine_image, images, registry, vllm_image

    base = images.base_tag()
    return {
        "base": base,
        "node": images.node_tag(base),
        "registry": registry.image_tag(base),
        "engine": engine_image.engine_tag(engine_image.ray_tag(base)),
        "vllm": vllm_image.tag(base),
    }


def _engine_checks(client: Any) -> list[Check]:
    info = client.info()
    version = str(client.version().get("Version", "?"))
    ours = _our_engine_pid()
    driver = info.get("Driver", "?")
    digits = re.match(r"(\d+)\.(\d+)", version)
    recent = digits is not None and (int(digits[1]), int(digits[2])) >= MIN_ENGINE_VERSION
    return [
        Check(
            "docker engine",
            "ok" if recent else "missing",
            f"{version}, {info.get('DockerRootDir', '?')}"
            + (f" (started by lab setup, pid {ours})" if ours else ""),
            ""
            if recent
            else "Docker {}.{} or newer (Debian bookworm's docker.io is 20.10)".format(
                *MIN_ENGINE_VERSION
            ),
        ),
        Check(
            "storage driver",
            "ok" if driver in ("overlay2", "fuse-overlayfs") else "warn",
            driver,
            ""
            if driver in ("overlay2", "fuse-overlayfs")
            else f"overlay2 is expected: {driver} copies every layer (slow, large)",
        ),
    ]


def _engine_root(client: Any) -> str:
    return str(client.info().get("DockerRootDir") or ENGINE_DATA_ROOT)


def _available_memory_mib() -> int:
    with contextlib.suppress(OSError, StopIteration, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def _free_mib(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free // (1 << 20)


def checks_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.status != "missing" for c in checks), "checks": [asdict(c) for c in checks]}


# ---------------------------------------------------------------------------------------------
# Setup


@dataclass
class SetupResult:
    installed: list[str]
    engine: str  # "answering" | "started"
    engine_pid: int | None = None


def plan_setup(*, tests: bool) -> tuple[list[HostPackage], bool, list[str]]:
    """(packages to install, whether to start an engine, problems that stop setup) — read only."""
    packages = missing_packages(tests=tests)
    start = engine_client() is None
    problems = []
    if packages or start:
        if not is_debian():
            problems.append("this is not a Debian machine with apt-get")
        if not is_root():
            problems.append(f"installing and starting dockerd need root (uid {os.geteuid()})")
    return packages, start, problems


def remedy(packages: list[HostPackage], start: bool) -> str:
    lines = []
    if packages:
        names = " ".join(p.package for p in packages)
        lines.append(f"install: {names}  (Debian/Ubuntu: apt-get install -y {names})")
    if start:
        lines.append(
            f"start a Docker engine: dockerd --data-root {ENGINE_DATA_ROOT} "
            f"--pidfile {ENGINE_PIDFILE} &   (or set DOCKER_HOST to one)"
        )
    return "\n".join(lines)


def setup(*, tests: bool = False, log: Any = print) -> SetupResult:
    """Install what is missing, start an engine when none answers; a no-op when all is there."""
    packages, start, problems = plan_setup(tests=tests)
    if problems:
        raise HostSetupError("; ".join(problems) + "\n" + remedy(packages, start))
    if packages:
        _apt_install([p.package for p in packages], log)
    pid = None
    if start:
        pid = start_engine(log)
    return SetupResult([p.package for p in packages], "started" if start else "answering", pid)


def _apt_install(names: list[str], log: Any) -> None:
    log(f"apt-get install {' '.join(names)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # No service starts from maintainer scripts (docker.io's init script would start an engine
    # that is not ours to stop); invoke-rc.d asks policy-rc.d, which we place only if absent.
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names],
        ):
            run = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise HostSetupError(
                    f"{' '.join(argv[:2])} failed ({run.returncode}): {run.stderr.strip()[-800:]}"
                )
    finally:
        if placed:
            policy.unlink(missing_ok=True)
    still = [n for n in names if n in {p.package for p in missing_packages(tests=True)}]
    if still:
        raise HostSetupError(f"installed, yet their commands are still missing: {' '.join(still)}")


def start_engine(log: Any = print) -> int:
    """dockerd with its own data root and pidfile, detached (a session of its own): the demo's
    lab outlives the command that started it. Returns its pid once it answers."""
    dockerd = which("dockerd")
    if dockerd is None:
        raise HostSetupError("dockerd is missing: apt-get install -y docker.io")
    ENGINE_DATA_ROOT.mkdir(parents=True, exist_ok=True)
    ENGINE_LOG.parent.mkdir(parents=True, exist_ok=True)
    log(f"starting a Docker engine (data root {ENGINE_DATA_ROOT}, log {ENGINE_LOG})")
    env = {**os.environ, "PATH": SEARCH_PATH}
    env.pop("DOCKER_HOST", None)
    with ENGINE_LOG.open("ab") as out:
        process = subprocess.Popen(
            [
                dockerd,
                f"--data-root={ENGINE_DATA_ROOT}",
                f"--host=unix://{ENGINE_SOCKET}",
                f"--pidfile={ENGINE_PIDFILE}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HostSetupError(f"dockerd exited ({process.returncode}): {_log_tail()}")
        if engine_client() is not None:
            return process.pid
        time.sleep(0.5)
    process.terminate()
    raise HostSetupError(
        f"dockerd did not answer within {ENGINE_START_TIMEOUT:.0f}s: {_log_tail()}"
    )


def _log_tail() -> str:
    with contextlib.suppress(OSError):
        return " | ".join(ENGINE_LOG.read_text(errors="replace").splitlines()[-5:])
    return f"(no {ENGINE_LOG})"


def _our_engine_pid() -> int | None:
    """The pid of the dockerd `lab setup` started, if it is still that process."""
    try:
        pid = int(ENGINE_PIDFILE.read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    ours = f"--pidfile={ENGINE_PIDFILE}".encode()
    return pid if argv and argv[0].endswith(b"dockerd") and ours in argv else None


def stop_engine() -> str:
    """Stop the engine `lab setup` started, and only it; one still running containers (another
    lab's, or anything else's) is left alone, with the reason."""
    pid = _our_engine_pid()
    if pid is None:
        return "no Docker engine started by lab setup is running"
    client = engine_client()
    if client is not None:
        running = [c.name for c in client.containers.list()]
        if running:
            return f"left the Docker engine (pid {pid}) running: containers {', '.join(running)}"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + ENGINE_STOP_TIMEOUT
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        if _zombie(pid):
            break
        time.sleep(0.3)
    if Path(f"/proc/{pid}").exists() and not _zombie(pid):
        os.kill(pid, signal.SIGKILL)
    return f"stopped the Docker engine (pid {pid})"


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    return False
