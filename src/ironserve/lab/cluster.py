"""Bring the lab up and down on the local Docker engine (through the docker SDK).

A node is a container with its own hostname, address on the lab's bridge network (its name
resolves there too), sshd published on 127.0.0.1:<port> (the lab's ed25519 key; the node's host
key is generated here, so known_hosts is written before the node starts), a fake
/sys/bus/pci/devices that the real ``lspci`` reads, the hardware description the simulators read
(/etc/ironserve-sim/hardware.json), and, on full nodes, systemd as PID 1 running sshd and a Docker
engine of the node's own (/var/lib/docker on a volume) and a /data filesystem of its own (a sparse
ext4 image, loop-mounted on the host). Light nodes run sshd alone. Beside the nodes, a container
serves the lab apt repository over HTTP. Everything created carries the labels
``ironserve.lab=1`` and ``ironserve.lab.id=<lab id>``; ``down`` removes exactly those.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironserve.catalog.engines import DEFAULT_ENGINE_OF_VENDOR
from ironserve.lab import images as img
from ironserve.lab import state as st
from ironserve.lab.state import LabState, NodeState, ServiceState

MAX_FULL_NODES = 16
MAX_LIGHT_NODES = 48
SSH_PORT_RANGE = range(22200, 23200)
SUBNET_CANDIDATES = [f"172.30.{n}.0/24" for n in range(100, 200)]
FIRST_NODE_HOST = 10  # .1 gateway, .2 apt repository, .3-.9 other lab services
DATA_SIZE = os.environ.get("IRONSERVE_LAB_DATA_SIZE", "64G")  # sparse: costs what is written
NODE_SHM_SIZE = "4g"
NODE_CAPS = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],  # this machine lacks it (--privileged is refused here)
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
}
# A lab node's engine is the one its vendor (the catalog's name: nvidia, ascend, vastai) ships.
ENGINE_OF_VENDOR = {vendor: kind.value for vendor, kind in DEFAULT_ENGINE_OF_VENDOR.items()}
LAB_FAULTS = ("disk-full", "node-down")
MKFS = "mkfs.ext4 -q -F -m 0 -J size=16 -i 1048576 -L data -E lazy_itable_init=1,nodiscard"
FILL_FILE = "/data/.ironserve-disk-full"
SIM_FAULTS = f"{img.SIM_DEST}/faults.py"  # runs as package `sim`


class LabError(Exception):
    """Something the operator must fix (no engine, no lab, bad node name): exit 2."""


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def connect() -> Any:
    """A docker SDK client for $DOCKER_HOST or the default socket, checked to answer."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as error:
        raise LabError(
            f"no Docker engine answers ({error}); `ironserve lab setup` starts one "
            "(`ironserve lab doctor` lists what is missing), or set DOCKER_HOST"
        ) from error
    return client


# ---------------------------------------------------------------------------------------------
# Keys


def _ed25519() -> tuple[bytes, str]:
    """A new ed25519 key: (OpenSSH private key, 'ssh-ed25519 AAAA...')."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())
    public = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH)
    return private, public.decode()


def ensure_lab_key(directory: Path) -> tuple[Path, str]:
    """The lab's client key pair (id_ed25519, 0600), kept across labs."""
    private = directory / "id_ed25519"
    public = directory / "id_ed25519.pub"
    if not (private.is_file() and public.is_file()):
        directory.mkdir(parents=True, exist_ok=True)
        data, pub = _ed25519()
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        public.write_text(f"{pub} ironserve-lab\n")
    os.chmod(private, 0o600)
    return private, public.read_text().strip()


def write_known_hosts(state: LabState) -> None:
    lines = [f"[127.0.0.1]:{n.ssh_port} {n.host_key}" for n in state.nodes]
    Path(state.known_hosts).write_text("".join(f"{line}\n" for line in lines))


# ---------------------------------------------------------------------------------------------
# Per-node files


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    return img.tar_context(files, mtime=int(time.time())).getvalue()


def _hexid(text: str) -> int:
    return int(text.removeprefix("0x"), 16)


def write_pci_sysfs(hw: dict[str, Any], dest: Path, sim_state: dict[str, Any]) -> None:
    """A /sys/bus/pci/devices tree of the node's PCI devices, for the real lspci (pciutils).

    A GPU under a ``gpu-missing`` fault is not on the bus (no entry); one that fell off the bus
    (``xid-79``) reads all-ones config space, which lspci prints as ``(rev ff)``.
    """
    from ironserve.lab.sim import faults as sim_faults

    gpus = hw.get("devices", []) if hw.get("vendor") == "nvidia" else []
    by_bus = {int(g["pci_bus"]): g for g in gpus}
    missing = {
        int(gpus[i]["pci_bus"]) for i in sim_faults.targets(sim_state, "gpu-missing", len(gpus))
    }
    lost = {int(gpus[i]["pci_bus"]) for i in sim_faults.targets(sim_state, "xid-79", len(gpus))}
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for dev in hw.get("pci_devices", []):
        slot = str(dev["slot"])
        bus = int(slot.split(":")[1], 16)
        if bus in missing:
            continue
        vendor, device = _hexid(dev["vendor_id"]), _hexid(dev["device_id"])
        cls, rev = _hexid(dev["class_code"]) << 8, _hexid(dev["rev"])
        sub_vendor, sub_device = vendor, 0
        if bus in by_bus:
            sub = _hexid(by_bus[bus]["pci_sub_system_id"])
            sub_vendor, sub_device = sub & 0xFFFF, sub >> 16
        config = bytearray(256)
        config[0:4] = vendor.to_bytes(2, "little") + device.to_bytes(2, "little")
        config[4:6] = (0x0546).to_bytes(2, "little")  # memory space, bus master, parity, SERR
        config[8] = rev
        config[9:12] = cls.to_bytes(3, "little")
        config[0x2C:0x30] = sub_vendor.to_bytes(2, "little") + sub_device.to_bytes(2, "little")
        config[0x3D] = 1  # INTA
        if bus in lost:
            config, rev = bytearray(b"\xff" * 256), 0xFF
        numa = next((g.get("numa_node", 0) for g in gpus if int(g["pci_bus"]) == bus), -1)
        files = {
            "vendor": f"0x{vendor:04x}",
            "device": f"0x{device:04x}",
            "class": f"0x{cls:06x}",
            "revision": f"0x{rev:02x}",
            "subsystem_vendor": f"0x{sub_vendor:04x}",
            "subsystem_device": f"0x{sub_device:04x}",
            "irq": "0",
            "numa_node": str(numa),
            "resource": "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 13,
        }  # what pciutils reads (strace of lspci -vv); a file per field, as sysfs has
        folder = tmp / slot
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text if text.endswith("\n") else text + "\n")
        (folder / "config").write_bytes(bytes(config))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _refresh_sysfs(client: Any, node: NodeState) -> None:
    """Rewrite the node's PCI tree after its simulated faults changed."""
    container = client.containers.get(node.container_id)
    hw = json.loads(_read_file(container, "/etc/ironserve-sim/hardware.json") or "{}")
    sim_state = json.loads(_read_file(container, "/var/lib/ironserve-sim/state.json") or "{}")
    sim_state.setdefault("faults", [])
    # The mount is a bind of the folder: rewrite its content in place (keep the inode).
    dest = Path(node.sysfs_dir)
    fresh = dest.with_name(dest.name + ".new")
    write_pci_sysfs(hw, fresh, sim_state)
    for entry in dest.iterdir():
        shutil.rmtree(entry)
    for entry in fresh.iterdir():
        entry.rename(dest / entry.name)
    fresh.rmdir()


def _read_file(container: Any, path: str) -> str | None:
    result = container.exec_run(["cat", path], stderr=False)  # the file, never a warning
    return result.output.decode() if result.exit_code == 0 else None


# ---------------------------------------------------------------------------------------------
# Addresses and ports


def _host_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        dest, mask = int(fields[1], 16), int(fields[7], 16)
        if mask:
            addr = socket.inet_ntoa(dest.to_bytes(4, "little"))
            bits = bin(mask).count("1")
            nets.append(ipaddress.IPv4Network(f"{addr}/{bits}", strict=False))
    return nets


def _pick_subnet(client: Any) -> ipaddress.IPv4Network:
    wanted = os.environ.get("IRONSERVE_LAB_SUBNET")
    if wanted:
        return ipaddress.IPv4Network(wanted)
    used = _host_networks()
    for net in client.networks.list():
        for config in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet") and ":" not in config["Subnet"]:
                used.append(ipaddress.IPv4Network(config["Subnet"], strict=False))
    for candidate in SUBNET_CANDIDATES:
        net = ipaddress.IPv4Network(candidate)
        if not any(net.overlaps(u) for u in used):
            return net
    raise LabError("no free /24 for the lab network; set IRONSERVE_LAB_SUBNET")


def _free_ports(client: Any, count: int) -> list[int]:
    taken: set[int] = set()
    # ignore_removed: another lab going down meanwhile removes containers between list and inspect.
    for container in client.containers.list(all=True, ignore_removed=True):
        for bindings in (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).values():
            for binding in bindings or []:
                if binding.get("HostPort"):
                    taken.add(int(binding["HostPort"]))
    ports = []
    for port in SSH_PORT_RANGE:
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise LabError(f"not enough free ports in {SSH_PORT_RANGE.start}-{SSH_PORT_RANGE.stop}")


@contextlib.contextmanager
def _claimed_ports(client: Any, count: int) -> Iterator[list[int]]:
    """Free 127.0.0.1 ports, claimed until the caller's containers that publish them have
    started: labs brought up side by side (parallel test processes) would otherwise pick the
    same ones between the look and the bind."""
    with img.build_lock("ports"):
        yield _free_ports(client, count)


def _default_prefix(directory: Path) -> str:
    if directory == (st.project_root() / ".lab").resolve():
        return "ironserve-lab"
    return "ironserve-lab-" + hashlib.sha256(str(directory).encode()).hexdigest()[:6]


# ---------------------------------------------------------------------------------------------
# Data disk (full nodes): a sparse ext4 image, loop-mounted on the host, bound to /data.


def _make_data_disk(folder: Path) -> tuple[str | None, str | None]:
    """(image, mount point), or (None, None) where loop devices are unavailable: the node then
    keeps /data on its own filesystem (and cannot take the disk-full fault)."""
    image, mount = folder / "data.ext4", folder / "data"
    mount.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["truncate", "-s", DATA_SIZE, str(image)], check=True)
        # No reserved blocks (root fills it too); a small journal and few inodes keep the
        # sparse image at a few MiB on the host until something is written.
        subprocess.run([*MKFS.split(), str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        _log(f"no /data disk for {folder.name} ({error}); /data stays on the node's filesystem")
        image.unlink(missing_ok=True)
        return None, None
    return str(image), str(mount)


def _drop_data_disk(mount: Path) -> None:
    if os.path.ismount(mount):
        subprocess.run(["umount", "-d", str(mount)], check=False)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", "-d", str(mount)], check=False)


# ---------------------------------------------------------------------------------------------
# Up


@dataclass(frozen=True)
class NodePlan:
    name: str
    index: int
    address: str
    ssh_port: int


def _wait_ssh(port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(64).startswith(b"SSH-2.0"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LabError(f"sshd on 127.0.0.1:{port} did not answer in time")
        time.sleep(0.2)


def _wait_ready(client: Any, node: NodeState, deadline: float) -> None:
    """sshd answers, and a full node's systemd has finished its boot jobs: sshd answers earlier,
    and on a loaded machine dockerd (which writes /etc/docker/key.json on its first start) may
    still be starting, so a "nothing changed" snapshot would see the boot, not the deploy."""
    _wait_ssh(node.ssh_port, deadline)
    if node.light:
        return
    left = max(1, int(deadline - time.monotonic()))
    result = client.containers.get(node.container_id).exec_run(
        ["timeout", str(left), "systemctl", "is-system-running", "--wait"]
    )
    status = result.output.decode(errors="replace").strip()
    if status not in ("running", "degraded"):
        raise LabError(f"{node.name}: systemd did not finish booting ({status or 'no answer'})")


def _create_node(
    client: Any, state: LabState, plan: NodePlan, directory: Path, client_pub: str
) -> NodeState:
    from ironserve.lab.hardware import node_hardware, node_kind

    api = client.api
    folder = directory / "nodes" / plan.name
    folder.mkdir(parents=True, exist_ok=True)
    hw = node_hardware(state.profile, plan.index, plan.name)
    sysfs = folder / "pci-devices"
    write_pci_sysfs(hw, sysfs, {"faults": []})
    host_private, host_public = _ed25519()
    labels = state.labels("node", plan.name)
    binds = {str(sysfs): {"bind": "/sys/bus/pci/devices", "mode": "ro"}}
    volumes: list[str] = []
    data_disk = data_mount = None
    if not state.light:
        volume = client.volumes.create(f"{state.prefix}-{plan.name}-docker", labels=labels)
        volumes.append(volume.name)
        binds[volume.name] = {"bind": "/var/lib/docker", "mode": "rw"}
        binds["/sys/fs/cgroup"] = {"bind": "/sys/fs/cgroup", "mode": "rw"}
        data_disk, data_mount = _make_data_disk(folder)
        if data_mount is not None:
            binds[data_mount] = {"bind": "/data", "mode": "rw"}
    host_config = api.create_host_config(
        binds=binds,
        port_bindings={22: ("127.0.0.1", plan.ssh_port)},
        tmpfs={"/run": "rw,exec,size=64m", "/run/lock": "rw,size=8m", "/tmp": "rw,exec,size=1g"},
        # A server's /dev/shm is half its RAM; engines share it with --ipc host (vLLM's
        # message queues take 160 MiB). tmpfs: only what is written costs memory.
        shm_size=NODE_SHM_SIZE,
        **NODE_CAPS,
    )
    # Full nodes boot systemd; light ones run the image's entrypoint (tini, sshd).
    boot: dict[str, Any] = {}
    if not state.light:
        boot = {"entrypoint": ["/sbin/init"], "stop_signal": "SIGRTMIN+3"}
    endpoint = api.create_endpoint_config(ipv4_address=plan.address, aliases=[plan.name])
    container = api.create_container(
        state.images["node"],
        hostname=plan.name,
        name=f"{state.prefix}-{plan.name}",
        labels=labels,
        ports=[22],
        environment={"container": "docker", "IRONSERVE_LAB_LIGHT": "1" if state.light else "0"},
        host_config=host_config,
        networking_config=api.create_networking_config({state.network_name: endpoint}),
        **boot,
    )
    cid: str = container["Id"]
    accel, count = hw["accelerator"], int(hw["accelerator_count"])
    npu_ips: list[str] = []
    if hw.get("vendor") == "ascend":
        base = ipaddress.IPv4Address("10.201.0.10") + plan.index * 8
        npu_ips = [str(base + d) for d in range(count)]
    node = NodeState(
        name=plan.name,
        index=plan.index,
        profile=state.profile,
        kind=node_kind(state.profile, plan.index),
        container=f"{state.prefix}-{plan.name}",
        container_id=cid,
        address=plan.address,
        ssh_port=plan.ssh_port,
        light=state.light,
        accelerator_kind=accel,
        accelerator_count=count,
        engine_kind=ENGINE_OF_VENDOR.get(str(hw.get("vendor")), "vllm"),
        npu_device_ips=npu_ips,
        volumes=volumes,
        data_disk=data_disk,
        data_mount=data_mount,
        sysfs_dir=str(sysfs),
        host_key=" ".join(host_public.split()[:2]),
    )
    files = {
        "root/.ssh/authorized_keys": (f"{client_pub}\n".encode(), 0o600),
        "etc/ssh/ssh_host_ed25519_key": (host_private, 0o600),
        "etc/ssh/ssh_host_ed25519_key.pub": (f"{host_public} root@{plan.name}\n".encode(), 0o644),
        "etc/ironserve-sim/hardware.json": (json.dumps(hw, indent=2).encode() + b"\n", 0o644),
        "etc/machine-id": (f"{secrets.token_hex(16)}\n".encode(), 0o444),
    }
    api.put_archive(cid, "/", _tar(files))
    api.start(cid)
    return node


def _parallel(items: Iterable[Any], work: Callable[[Any], Any], workers: int = 4) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(work, items))


def up(
    nodes: int = 3,
    profile: str = "h100x8",
    light: bool = False,
    directory: Path | None = None,
    dynamo: bool | None = None,
    real_vllm: bool = True,
) -> LabState:
    """Create the lab: images (cached), network, apt repository service, nodes; wait for SSH.
    ``dynamo`` (default: $IRONSERVE_LAB_DYNAMO=1): a lab serving NVIDIA Dynamo (its registry
    holds Dynamo's images, inventories/lab_dynamo.py deploys it). ``real_vllm=False``: no real
    vLLM image in the registry and no real model on the hub (the stand-in engines only)."""
    from ironserve.lab.hardware import PROFILES

    directory = (directory or st.lab_dir()).resolve()
    if profile not in PROFILES:
        raise LabError(f"unknown profile {profile!r}; known: {', '.join(sorted(PROFILES))}")
    limit = MAX_LIGHT_NODES if light else MAX_FULL_NODES
    if not 1 <= nodes <= limit:
        raise LabError(f"--nodes must be 1..{limit} for {'light' if light else 'full'} nodes")
    existing = st.load(directory)
    if existing is not None:
        raise LabError(
            f"a lab is already up in {directory} ({len(existing.nodes)} x {existing.profile}); "
            "run `ironserve lab down` first"
        )
    client = connect()
    images = img.ensure_images(client)
    if real_vllm:  # the real vLLM and the real model it serves (caches of this machine)
        from ironserve.lab import real_model, vllm_image

        real_model.ensure(client, vllm_image.ensure(client, images.base))
    key, client_pub = ensure_lab_key(directory)
    from ironserve.lab.serving import ensure_api_key

    ensure_api_key(directory)  # the endpoint's API key (0600): serving_api_key_file of the lab
    state = LabState(
        lab_id=secrets.token_hex(4),
        prefix=_default_prefix(directory),
        profile=profile,
        light=light,
        created_at=time.time(),
        docker_host=os.environ.get("DOCKER_HOST"),
        images={"base": images.base, "node": images.node},
        ssh_key=str(key),
        known_hosts=str(directory / "known_hosts"),
        dynamo=os.environ.get(st.DYNAMO_ENV) == "1" if dynamo is None else dynamo,
        real_vllm=real_vllm,
    )
    st.save(state, directory)  # from here on, `down` can undo a half-made lab
    try:
        _up(client, state, nodes, directory, client_pub)
    except BaseException:
        _log("bringing the lab up failed; removing what was created")
        down(directory)
        raise
    return state


def _up(client: Any, state: LabState, count: int, directory: Path, client_pub: str) -> None:
    import docker.errors
    import docker.types

    for attempt in range(5):  # another lab may take the same free subnet at the same moment
        subnet = _pick_subnet(client)
        hosts = list(subnet.hosts())
        gateway = str(hosts[0])
        try:
            network = client.networks.create(
                state.prefix,
                driver="bridge",
                ipam=docker.types.IPAMConfig(
                    pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)]
                ),
                labels=state.labels("network"),
            )
            break
        except docker.errors.APIError as error:
            if "overlap" not in str(error) or attempt == 4:
                raise
            time.sleep(1)
    state.network_id, state.network_name = network.id, network.name
    state.subnet, state.gateway = str(subnet), gateway
    st.save(state, directory)

    _start_apt_repository(client, state, directory, str(hosts[1]))
    st.save(state, directory)
    _start_hub(client, state, directory, str(hosts[2]))
    if not state.light:  # only full nodes have a dockerd to pull with
        _start_registry(client, state, directory, str(hosts[3]))

    lock = threading.Lock()

    def create(plan: NodePlan) -> NodeState:
        node = _create_node(client, state, plan, directory, client_pub)
        with lock:
            state.nodes.append(node)
            state.nodes.sort(key=lambda n: n.index)
            st.save(state, directory)
        return node

    started = time.monotonic()
    with _claimed_ports(client, count) as ports:
        plans = [
            NodePlan(
                name=f"{state.profile}-{i + 1}",
                index=i,
                address=str(hosts[FIRST_NODE_HOST - 1 + i]),
                ssh_port=ports[i],
            )
            for i in range(count)
        ]
        _parallel(plans, create)
    write_known_hosts(state)
    _log(f"{count} node(s) started in {time.monotonic() - started:.1f}s; waiting for sshd and boot")
    deadline = time.monotonic() + 180
    _parallel(state.nodes, lambda n: _wait_ready(client, n, deadline), workers=16)
    st.save(state, directory)


def _start_apt_repository(client: Any, state: LabState, directory: Path, address: str) -> None:
    """Serve the lab's apt repository folder over HTTP on the lab network (python3 http.server)."""
    try:
        from ironserve.lab import packages
    except ImportError:
        _log("ironserve.lab.packages is missing: no lab apt repository")
        return
    repo = directory / "apt"
    started = time.monotonic()
    built = packages.build_repository(repo)
    state.installer_sha256 = dict(built.run_sha256)
    _log(f"apt repository built in {time.monotonic() - started:.1f}s")
    api = client.api
    name = f"{state.prefix}-apt"
    container = api.create_container(
        state.images["base"],
        command=["python3", "-m", "http.server", "80", "--directory", "/srv/repo"],
        hostname="apt",
        name=name,
        labels=state.labels("service"),
        host_config=api.create_host_config(binds={str(repo): {"bind": "/srv/repo", "mode": "ro"}}),
        networking_config=api.create_networking_config(
            {state.network_name: api.create_endpoint_config(ipv4_address=address, aliases=["apt"])}
        ),
    )
    api.start(container["Id"])
    url = f"http://{address}/"
    state.services["apt"] = ServiceState(
        name=name, container_id=container["Id"], address=address, url=url
    )
    state.apt_repository = url
    state.apt_source = f"deb [trusted=yes] {url} ./"


def _start_hub(client: Any, state: LabState, directory: Path, address: str) -> None:
    """The lab model hub at <.3>:80 (HF and ModelScope APIs; ironserve.lab.hub)."""
    from ironserve.lab.hub import service as hub

    started = time.monotonic()
    with _claimed_ports(client, 1) as (port,):
        state.services["hub"] = hub.start(client, state, directory, address, port)
    st.save(state, directory)
    _log(f"hub up in {time.monotonic() - started:.1f}s")


def _start_registry(client: Any, state: LabState, directory: Path, address: str) -> None:
    """The lab registry at <.4>:5000 (and 127.0.0.1:<port>), holding the lab engine images."""
    from ironserve.lab import registry

    started = time.monotonic()
    name = f"{state.prefix}-registry"
    labels = state.labels("service")
    registry.ensure_image(client, state.images["base"])  # built (once) before ports are claimed
    with _claimed_ports(client, 1) as (port,):
        cid = registry.start(
            client, name, state.images["base"], state.network_name, address, port, labels
        )
    state.services["registry"] = ServiceState(
        name=name,
        container_id=cid,
        address=address,
        url=f"http://{address}:{registry.PORT}",
        host_url=f"http://127.0.0.1:{port}",
    )
    st.save(state, directory)
    registry.wait_ready(f"http://127.0.0.1:{port}")
    state.engine_images = registry.publish_engines(
        client, state.images["base"], address, port, dynamo=state.dynamo, real_vllm=state.real_vllm
    )
    st.save(state, directory)
    _log(f"registry up with engine images in {time.monotonic() - started:.1f}s")


# ---------------------------------------------------------------------------------------------
# Down, status


def down(directory: Path | None = None, everything: bool = False) -> list[str]:
    """Remove what the lab recorded (by ids and by its lab-id label); with ``everything``, every
    object labelled ironserve.lab=1 on this engine. Images stay (a cache). Returns what went."""
    import docker.errors

    directory = (directory or st.lab_dir()).resolve()
    state = st.load(directory)
    if state is None and not everything:
        return []
    client = connect()
    if everything:
        label = f"{st.LABEL}=1"
    else:
        assert state is not None
        label = f"{st.LABEL_ID}={state.lab_id}"
    removed: list[str] = []
    containers = {c.id: c for c in client.containers.list(all=True, filters={"label": label})}
    if state is not None:
        recorded = [n.container_id for n in state.nodes] + [
            s.container_id for s in state.services.values()
        ]
        for cid in recorded:
            if cid not in containers:
                with contextlib.suppress(docker.errors.NotFound):
                    containers[cid] = client.containers.get(cid)

    def remove_container(container: Any) -> str:
        container.remove(force=True, v=True)
        for mount in container.attrs.get("Mounts") or []:  # its /data disk, wherever it lives
            if mount.get("Destination") == "/data" and mount.get("Type") == "bind":
                _drop_data_disk(Path(mount["Source"]))
        return str(container.name)

    removed += _parallel(containers.values(), remove_container)
    volumes = {v.name: v for v in client.volumes.list(filters={"label": label})}
    for name in [v for n in (state.nodes if state else []) for v in n.volumes]:
        if name not in volumes:
            with contextlib.suppress(docker.errors.NotFound):
                volumes[name] = client.volumes.get(name)
    for volume in volumes.values():
        volume.remove(force=True)
        removed.append(f"volume {volume.name}")
    networks = {n.id: n for n in client.networks.list(filters={"label": label})}
    if state is not None and state.network_id and state.network_id not in networks:
        with contextlib.suppress(docker.errors.NotFound):
            networks[state.network_id] = client.networks.get(state.network_id)
    for network in networks.values():
        network.remove()
        removed.append(f"network {network.name}")
    nodes_dir = directory / "nodes"
    if nodes_dir.is_dir():

        def remove_folder(folder: Path) -> None:
            _drop_data_disk(folder / "data")
            shutil.rmtree(folder, ignore_errors=True)

        _parallel(list(nodes_dir.iterdir()), remove_folder, workers=8)
        shutil.rmtree(nodes_dir, ignore_errors=True)
    (directory / "known_hosts").unlink(missing_ok=True)
    (directory / "api_key").unlink(missing_ok=True)  # the endpoint's key dies with the lab
    shutil.rmtree(directory / "hub", ignore_errors=True)  # generated lab models (up to GBs)
    st.remove(directory)
    return removed


# The proportional set size of every process in the node's PID namespace: its own daemons and
# the engine containers its dockerd runs (their cgroups are not the node's under cgroup v1).
PSS_SCRIPT = "cat /proc/[0-9]*/smaps_rollup 2>/dev/null | awk '/^Pss:/ {s += $2} END {print s}'"


def _memory_mib(container: Any) -> float | None:
    """The node's memory: the PSS of its processes, the engine's included."""
    try:
        result = container.exec_run(["sh", "-c", PSS_SCRIPT])
        return round(int(result.output.decode().strip()) / 1024, 1)
    except (ValueError, AttributeError):
        return None


def status(directory: Path | None = None, memory: bool = False) -> dict[str, Any] | None:
    """The lab as one JSON-able object, with each container's live state; None: no lab."""
    import docker.errors

    directory = (directory or st.lab_dir()).resolve()
    state = st.load(directory)
    if state is None:
        return None
    serving = _serving(directory)  # before the Docker client: pyinfra's loader patches ssl
    client = connect()
    nodes = []
    measure: list[tuple[dict[str, Any], Any]] = []
    for node in state.nodes:
        try:
            container = client.containers.get(node.container_id)
            running = container.status
        except docker.errors.NotFound:
            container, running = None, "missing"
        entry: dict[str, Any] = {
            "name": node.name,
            "address": node.address,
            "ssh_port": node.ssh_port,
            "profile": node.profile,
            "kind": node.kind,
            "accelerator": node.accelerator_kind,
            "accelerator_count": node.accelerator_count,
            "container": node.container,
            "container_id": node.container_id,
            "state": running,
            "light": node.light,
            "faults": node.faults,
        }
        nodes.append(entry)
        if memory and container is not None and running == "running":
            measure.append((entry, container))
    sizes = _parallel([c for _, c in measure], _memory_mib, workers=16)
    for (entry, _), mib in zip(measure, sizes, strict=True):
        entry["memory_mib"] = mib
    return {
        "lab_dir": str(directory),
        "lab_id": state.lab_id,
        "profile": state.profile,
        "light": state.light,
        "network": {"name": state.network_name, "subnet": state.subnet, "gateway": state.gateway},
        "ssh_user": state.ssh_user,
        "ssh_key": state.ssh_key,
        "known_hosts": state.known_hosts,
        "apt_repository": state.apt_repository,
        "apt_source": state.apt_source,
        "dynamo": state.dynamo,
        "services": {k: v.model_dump() for k, v in state.services.items()},
        "images": state.images,
        "nodes": nodes,
        **serving,
    }


def _serving(directory: Path) -> dict[str, Any]:
    """``endpoint`` (the OpenAI base URL) and ``api_key_file`` (0600), from the Plan."""
    from ironserve.lab import serving

    return dict(serving.status(directory))


# ---------------------------------------------------------------------------------------------
# Faults


def _require(directory: Path | None) -> tuple[Path, LabState]:
    directory = (directory or st.lab_dir()).resolve()
    state = st.load(directory)
    if state is None:
        raise LabError(f"no lab is up (no {st.state_path(directory)}); run `ironserve lab up`")
    return directory, state


def _exec(container: Any, script: str) -> str:
    result = container.exec_run(["bash", "-ec", script])
    output: str = result.output.decode(errors="replace")
    if result.exit_code != 0:
        raise LabError(f"{container.name}: {script!r} failed ({result.exit_code}): {output}")
    return output


def fault_kinds() -> list[str]:
    from ironserve.lab.sim.faults import KINDS

    return sorted([*KINDS, *LAB_FAULTS])


def fault(
    node_name: str, kind: str, target: int | None = None, directory: Path | None = None
) -> str:
    """Inject a fault into one node; returns a one-line description."""
    directory, state = _require(directory)
    try:
        node = state.node(node_name)
    except KeyError as error:
        raise LabError(str(error.args[0])) from error
    if kind not in fault_kinds():
        raise LabError(f"unknown fault {kind!r}; known: {', '.join(fault_kinds())}")
    client = connect()
    container = client.containers.get(node.container_id)
    if kind == "node-down":
        container.stop(timeout=5)
        what = f"{node.name}: container stopped"
    else:
        if container.status != "running":
            raise LabError(f"{node.name} is down; `ironserve lab heal {node.name}` first")
        if kind == "disk-full":
            if node.data_mount is None:
                raise LabError(f"{node.name} is a light node: it has no /data disk to fill")
            # Every free block into one file (fallocate reserves without writing), then the
            # crumbs with dd, until the filesystem refuses: df shows 100%, writes get ENOSPC.
            _exec(
                container,
                f"avail=$(df -B1 --output=avail /data | tail -1); "
                f"fallocate -l $avail {FILL_FILE} 2>/dev/null || true; "
                f"dd if=/dev/zero of={FILL_FILE}.tail bs=4k 2>/dev/null || true; sync",
            )
            what = f"{node.name}: " + _exec(container, "df -h /data | tail -1").strip()
        else:
            argv = ["python3", SIM_FAULTS, "apply", kind]
            if target is not None:
                argv += ["--target", str(target)]
            result = container.exec_run(argv)
            if result.exit_code != 0:
                raise LabError(f"{node.name}: {result.output.decode(errors='replace')}")
            _refresh_sysfs(client, node)
            what = f"{node.name}: {kind}" + (f" on device {target}" if target is not None else "")
    if kind not in node.faults:
        node.faults.append(kind)
    st.save(state, directory)
    return what


def heal(node_name: str, directory: Path | None = None) -> str:
    """Undo every fault of the node: start it if down, free /data, repair simulated hardware."""
    directory, state = _require(directory)
    try:
        node = state.node(node_name)
    except KeyError as error:
        raise LabError(str(error.args[0])) from error
    client = connect()
    container = client.containers.get(node.container_id)
    if container.status != "running":
        container.start()
        _wait_ready(client, node, time.monotonic() + 120)
        container.reload()
    _exec(container, f"rm -f {FILL_FILE} {FILL_FILE}.tail")
    _exec(container, f"python3 {SIM_FAULTS} heal")
    _refresh_sysfs(client, node)
    node.faults = []
    st.save(state, directory)
    return f"{node.name}: healed"
