"""The lab's package repository: the vendor packages, with the real names, carrying simulators.

`build_repository(dest)` writes a flat apt repository (``deb [trusted=yes] URL ./``) holding
.deb packages named as the provisioning roles install them (nvidia-driver-580-server-open,
cuda-toolkit-12-8, nvidia-fabricmanager-580, ...), plus the Ascend ``.run`` installers and the
Vastai driver ``.run``. Every package ships the simulators of ``ironserve.lab.sim`` under the
vendor tool names; maintainer scripts record the install in the node's sim state the way a
real install changes the machine (a loaded kernel module, device nodes).

The installers are built byte for byte the same from the same sources (fixed mtimes and order),
so their sha256 is known where they are built: `lab up` records it in the lab state and the lab
inventory hands it to the roles as ``ascend_checksums`` / ``vastai_checksums``
(`role_checksums`), which the nodes verify each download against. A reused repository whose
installer no longer has its sum (edited on disk) is rebuilt.

Two lab-only packages exist because every node needs them before provisioning:
``ironserve-sim-base`` (the sim library, the fault and kernel-log commands) and ``pciutils``
(our lspci; an epoch above Debian's so it is never replaced by the real one). The lab installs
both at node creation (``BASE_PACKAGES``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ironserve.lab import hardware

SIM_DIR = Path(__file__).parent / "sim"
SIM_LIB = "/usr/lib/ironserve-sim"

# ---- pinned versions (one place) ----
NVIDIA_BRANCH = "580"
NVIDIA_DRIVER = hardware.NVIDIA_DRIVER_VERSION  # 580.95.05
NVIDIA_DEB_VERSION = f"{NVIDIA_DRIVER}-0ubuntu0.24.04.1"
FABRICMANAGER_VERSION = f"{NVIDIA_DRIVER}-1"  # must equal the driver's version
CUDA_TOOLKIT_VERSION = "12.8.1-1"
CONTAINER_TOOLKIT_VERSION = "1.17.8-1"
DCGM_VERSION = "1:4.4.2-1"
RDMA_VERSION = "44.0-2+ironserve1"  # above bookworm's 44.0-2
PCIUTILS_VERSION = "1:3.9.0-4+ironserve1"
SIM_BASE_VERSION = "1.0.0"
ASCEND_DRIVER = hardware.ASCEND_DRIVER_VERSION  # 24.1.rc3
ASCEND_FIRMWARE = hardware.ASCEND_FIRMWARE_VERSION  # 7.5.0.3.220
VASTAI_DRIVER = hardware.VASTAI_DRIVER_VERSION

ASCEND_DRIVER_RUN = f"Ascend-hdk-910b-npu-driver_{ASCEND_DRIVER}_linux-x86-64.run"
ASCEND_FIRMWARE_RUN = f"Ascend-hdk-910b-npu-firmware_{ASCEND_FIRMWARE}.run"
VASTAI_DRIVER_RUN = f"vastai_driver_install_{VASTAI_DRIVER}.run"

BASE_PACKAGES = ("ironserve-sim-base", "pciutils")

# nvcc --version of CUDA 12.8 update 1 (the toolkit 12.8.1 package ships this build).
NVCC_VERSION_TEXT = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Fri_Feb_21_20:23:50_PST_2025
Cuda compilation tools, release 12.8, V12.8.93
Build cuda_12.8.r12.8/compiler.35583870_0
"""


@dataclass
class Package:
    name: str
    version: str
    description: str
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # path -> (data, mode)
    depends: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    postinst: str = ""
    prerm: str = ""


@dataclass(frozen=True)
class RepositoryInfo:
    path: Path
    content_hash: str
    packages: dict[str, str]  # name -> version
    debs: dict[str, Path]
    run_files: dict[str, Path]
    rebuilt: bool
    run_sha256: dict[str, str] = field(default_factory=dict)  # installer file name -> sha256


def _script(module: str) -> bytes:
    """A sim module as an executable tool: same code, python3 shebang."""
    text = (SIM_DIR / f"{module}.py").read_text(encoding="utf-8")
    return ("#!/usr/bin/python3\n" + text).encode()


def _sim_library() -> dict[str, tuple[bytes, int]]:
    return {
        f"{SIM_LIB}/sim/{p.name}": (p.read_bytes(), 0o644) for p in sorted(SIM_DIR.glob("*.py"))
    }


def _state_call(*args: str) -> str:
    return f'python3 "${{IRONSERVE_SIM_LIB:-{SIM_LIB}}}/sim/install_state.py" {" ".join(args)}\n'


def _packages() -> list[Package]:
    base = f"ironserve-sim-base (>= {SIM_BASE_VERSION})"
    utils = f"nvidia-utils-{NVIDIA_BRANCH}-server"
    driver_post = "set -e\n" + _state_call("nvidia-driver", NVIDIA_DRIVER)
    driver_prerm = "set -e\n" + _state_call("nvidia-driver-removed")
    drivers = [
        Package(
            name=f"nvidia-driver-{NVIDIA_BRANCH}-server{flavour}",
            version=NVIDIA_DEB_VERSION,
            description=f"NVIDIA Server Driver metapackage{label} (ironserve lab simulation)",
            depends=[base, f"{utils} (= {NVIDIA_DEB_VERSION})"],
            conflicts=[f"nvidia-driver-{NVIDIA_BRANCH}-server{other}"],
            provides=[f"nvidia-driver-{NVIDIA_BRANCH}"],
            files={
                f"/usr/share/doc/nvidia-driver-{NVIDIA_BRANCH}-server{flavour}/README": (
                    b"Simulated driver: installing it loads the simulated kernel module.\n",
                    0o644,
                )
            },
            postinst=driver_post,
            prerm=driver_prerm,
        )
        for flavour, label, other in (("-open", " (open kernel modules)", ""), ("", "", "-open"))
    ]
    unit = (
        b"[Unit]\nDescription=NVIDIA fabric manager service\n"
        b"After=network-online.target\n\n"
        b"[Service]\nType=simple\n"
        b"ExecStart=/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg\n"
        b"Restart=on-failure\n\n"
        b"[Install]\nWantedBy=multi-user.target\n"
    )
    ibstat = _script("ibstat")
    nvcc = ("#!/bin/sh\ncat <<'EOF'\n" + NVCC_VERSION_TEXT + "EOF\n").encode()
    return [
        Package(
            name="ironserve-sim-base",
            version=SIM_BASE_VERSION,
            description="ironserve lab: simulated-hardware library, fault and kernel-log tools",
            depends=["python3"],
            files={
                **_sim_library(),
                "/usr/sbin/ironserve-sim-fault": (_script("faults"), 0o755),
                "/usr/sbin/ironserve-sim-kernlog": (_script("kernlog"), 0o755),
            },
        ),
        Package(
            name="pciutils",
            version=PCIUTILS_VERSION,
            description="PCI utilities (ironserve lab simulation of lspci)",
            depends=[base],
            files={"/usr/bin/lspci": (_script("lspci"), 0o755)},
        ),
        Package(
            name=utils,
            version=NVIDIA_DEB_VERSION,
            description="NVIDIA Server Driver support binaries (ironserve lab simulation)",
            depends=[base],
            files={"/usr/bin/nvidia-smi": (_script("nvidia_smi"), 0o755)},
        ),
        *drivers,
        Package(
            name="cuda-toolkit-12-8",
            version=CUDA_TOOLKIT_VERSION,
            description="CUDA Toolkit 12.8 meta-package (ironserve lab simulation)",
            files={
                "/usr/local/cuda-12.8/bin/nvcc": (nvcc, 0o755),
                "/usr/local/cuda-12.8/version.json": (
                    b'{\n   "cuda" : {\n      "name" : "CUDA SDK",\n'
                    b'      "version" : "12.8.1"\n   }\n}\n',
                    0o644,
                ),
            },
            postinst="set -e\nln -sfn /usr/local/cuda-12.8 /usr/local/cuda\n",
        ),
        Package(
            name=f"nvidia-fabricmanager-{NVIDIA_BRANCH}",
            version=FABRICMANAGER_VERSION,
            description="Fabric Manager for NVSwitch based systems (ironserve lab simulation)",
            depends=[base],
            files={
                "/usr/bin/nv-fabricmanager": (_script("nv_fabricmanager"), 0o755),
                "/lib/systemd/system/nvidia-fabricmanager.service": (unit, 0o644),
                "/usr/share/nvidia/nvswitch/fabricmanager.cfg": (
                    b"LOG_LEVEL=4\nLOG_FILE_NAME=/var/log/fabricmanager.log\n",
                    0o644,
                ),
            },
        ),
        Package(
            name="nvidia-container-toolkit",
            version=CONTAINER_TOOLKIT_VERSION,
            description="NVIDIA Container toolkit (ironserve lab simulation)",
            depends=[base],
            files={
                "/usr/bin/nvidia-ctk": (_script("nvidia_ctk"), 0o755),
                # No GPUs to inject: the runtime hands the container to runc unchanged.
                "/usr/bin/nvidia-container-runtime": (b'#!/bin/sh\nexec runc "$@"\n', 0o755),
                # Docker's `--gpus` adds this as an OCI prestart hook (dockerd looks for it on the
                # PATH when it starts); with no devices to inject it only has to succeed.
                "/usr/bin/nvidia-container-runtime-hook": (
                    b"#!/bin/sh\n# ironserve lab: no GPUs to inject\ncat >/dev/null\nexit 0\n",
                    0o755,
                ),
            },
        ),
        Package(
            name="datacenter-gpu-manager-4-cuda12",
            version=DCGM_VERSION,
            description="NVIDIA Data Center GPU Manager 4, CUDA 12 (ironserve lab simulation)",
            depends=[base],
            files={"/usr/bin/dcgmi": (_script("dcgmi"), 0o755)},
        ),
        Package(
            name="infiniband-diags",
            version=RDMA_VERSION,
            description="InfiniBand diagnostic programs (ironserve lab simulation)",
            depends=[base],
            files={"/usr/sbin/ibstat": (ibstat, 0o755), "/usr/sbin/ibstatus": (ibstat, 0o755)},
        ),
        Package(
            name="ibverbs-utils",
            version=RDMA_VERSION,
            description="Examples for the libibverbs library (ironserve lab simulation)",
            depends=[base],
            files={"/usr/bin/ibv_devinfo": (ibstat, 0o755)},
        ),
        Package(
            name="rdma-core",
            version=RDMA_VERSION,
            description="RDMA core userspace infrastructure (ironserve lab simulation)",
            files={"/usr/share/doc/rdma-core/README.ironserve": (b"Simulated rdma-core.\n", 0o644)},
        ),
    ]


def _control(p: Package, installed_kib: int) -> str:
    lines = [
        f"Package: {p.name}",
        f"Version: {p.version}",
        "Architecture: all",
        "Maintainer: ironserve lab <lab@ironserve.invalid>",
        f"Installed-Size: {installed_kib}",
    ]
    if p.depends:
        lines.append("Depends: " + ", ".join(p.depends))
    if p.conflicts:
        lines.append("Conflicts: " + ", ".join(p.conflicts))
    if p.provides:
        lines.append("Provides: " + ", ".join(p.provides))
    lines += ["Section: misc", "Priority: optional", f"Description: {p.description}"]
    return "\n".join(lines) + "\n"


def _build_deb(p: Package, out_dir: Path, work: Path) -> Path:
    root = work / p.name
    (root / "DEBIAN").mkdir(parents=True)
    for path, (data, mode) in p.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
    size = sum(len(d) for d, _ in p.files.values()) // 1024 + 1
    (root / "DEBIAN" / "control").write_text(_control(p, size), encoding="utf-8")
    for name, body in (("postinst", p.postinst), ("prerm", p.prerm)):
        if body:
            script = root / "DEBIAN" / name
            script.write_text("#!/bin/sh\n" + body, encoding="utf-8")
            script.chmod(0o755)
    deb = out_dir / f"{p.name}_{p.version.split(':')[-1]}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def _packages_index(dest: Path, debs: list[Path]) -> str:
    if shutil.which("dpkg-scanpackages"):
        done = subprocess.run(
            ["dpkg-scanpackages", "--multiversion", ".", "/dev/null"],
            cwd=dest,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout
    stanzas = []
    for deb in sorted(debs):
        control = subprocess.run(
            ["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True
        ).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(
            f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    return "\n".join(stanzas)


def _release(dest: Path) -> str:
    files = [dest / "Packages", dest / "Packages.gz"]
    out = [
        "Origin: ironserve-lab",
        "Label: ironserve-lab",
        "Suite: lab",
        "Codename: lab",
        "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()),
        "Architectures: all amd64 arm64",
        "Description: ironserve lab packages (simulated vendor tools)",
    ]
    for title, algo in (("MD5Sum", hashlib.md5), ("SHA256", hashlib.sha256)):
        out.append(f"{title}:")
        for f in files:
            data = f.read_bytes()
            out.append(f" {algo(data).hexdigest()} {len(data)} {f.name}")
    return "\n".join(out) + "\n"


# ---- self-extracting .run installers (bash header + tar.gz payload, makeself-like) ----

_RUN_HEADER = r"""#!/bin/bash
# {label} (ironserve lab simulation)
VERSION="{version}"
PAYLOAD_SHA256="{sha}"
ROOT="${{IRONSERVE_SIM_ROOT:-/}}"
ROOT="${{ROOT%/}}"
QUIET=0
say() {{ [ "$QUIET" = 1 ] || echo "$@"; }}
payload() {{ tail -n +__SKIP__ "$0"; }}
for a in "$@"; do [ "$a" = "--quiet" ] && QUIET=1; done
case " $* " in
  *" --version "*) echo "$VERSION"; exit 0 ;;
  *" --check "*)
    say "Verifying archive integrity...  100%   SHA256 checksums are OK. All good."
    [ "$(payload | sha256sum | cut -d' ' -f1)" = "$PAYLOAD_SHA256" ] || {{
      echo "Error in SHA256 checksums: $(payload | sha256sum | cut -d' ' -f1) is different from $PAYLOAD_SHA256" >&2; exit 1; }}
    exit 0 ;;
esac
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
payload | tar -xz -C "$TMP" || {{ echo "payload extraction failed" >&2; exit 1; }}
stamp() {{ date '+%Y-%m-%d %H:%M:%S'; }}
install_sim_lib() {{
  mkdir -p "$ROOT{lib}" && cp -r "$TMP/sim" "$ROOT{lib}/"
}}
{body}
exit 0
__ARCHIVE_BELOW__
"""  # noqa: E501

_ASCEND_DRIVER_BODY = r"""
case " $* " in *" --full "*|*" --install "*|*" --upgrade "*) ;; *)
  echo "Usage: $0 --full|--check|--version [--quiet]" >&2; exit 1 ;; esac
if ! grep -q '^HwHiAiUser:' "$ROOT/etc/passwd" 2>/dev/null; then
  echo "[Driver] [$(stamp)] [ERROR]The user HwHiAiUser does not exist. Create the running user first: groupadd HwHiAiUser && useradd -g HwHiAiUser -d /home/HwHiAiUser -m HwHiAiUser -s /bin/bash" >&2
  exit 1
fi
say "[Driver] [$(stamp)] [INFO]Start time: $(stamp)"
install_sim_lib
mkdir -p "$ROOT/usr/local/bin" "$ROOT/usr/local/Ascend/driver/tools"
install -m 755 "$TMP/bin/npu-smi" "$ROOT/usr/local/bin/npu-smi"
install -m 555 "$TMP/bin/hccn_tool" "$ROOT/usr/local/Ascend/driver/tools/hccn_tool"
printf 'Version=%s\n' "$VERSION" > "$ROOT/usr/local/Ascend/driver/version.info"
python3 "$ROOT{lib}/sim/install_state.py" ascend-driver "$VERSION"
say "[Driver] [$(stamp)] [INFO]Driver package installed successfully! The new version takes effect immediately."
"""  # noqa: E501

_ASCEND_FIRMWARE_BODY = r"""
case " $* " in *" --full "*|*" --install "*|*" --upgrade "*) ;; *)
  echo "Usage: $0 --full|--check|--version [--quiet]" >&2; exit 1 ;; esac
if [ ! -f "$ROOT/usr/local/Ascend/driver/version.info" ]; then
  echo "[Firmware] [$(stamp)] [ERROR]Driver package is not installed. Install the driver first." >&2
  exit 1
fi
install_sim_lib
mkdir -p "$ROOT/usr/local/Ascend/firmware"
printf 'Version=%s\n' "$VERSION" > "$ROOT/usr/local/Ascend/firmware/version.info"
python3 "$ROOT{lib}/sim/install_state.py" ascend-firmware "$VERSION"
say "[Firmware] [$(stamp)] [INFO]Firmware package installed successfully! Reboot now or after driver installation for the installation/upgrade to take effect."
"""  # noqa: E501

_VASTAI_BODY = r"""
[ "$1" = "install" ] || { echo "Usage: $0 install [--setkernelhook]" >&2; exit 1; }
install_sim_lib
if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("iommu_enabled") else 1)' "$ROOT/etc/ironserve-sim/hardware.json"; then
  python3 "$ROOT{lib}/sim/install_state.py" kernlog "vastai_pci: iommu is enable, the driver does not support IOMMU"
  echo "Error! IOMMU is enable, please close IOMMU first" >&2
  exit 1
fi
mkdir -p "$ROOT/usr/bin"
install -m 755 "$TMP/bin/vasmi" "$ROOT/usr/bin/vasmi"
python3 "$ROOT{lib}/sim/install_state.py" vastai-driver "$VERSION"
say "vastai driver $VERSION installed, $( [ " $* " != "${*/--setkernelhook/}" ] && echo 'kernel hook set, ' )devices ready."
"""  # noqa: E501


def _tar_gz(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    # Fixed mtimes and ordering: the same inputs give the same bytes (idempotent builds).
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name in sorted(files):
            data, mode = files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _run_file(label: str, version: str, body: str, tools: dict[str, str]) -> bytes:
    files = {f"sim/{p.name}": (p.read_bytes(), 0o644) for p in sorted(SIM_DIR.glob("*.py"))}
    files.update({f"bin/{tool}": (_script(module), 0o755) for tool, module in tools.items()})
    payload = _tar_gz(files)
    header = _RUN_HEADER.format(
        label=label,
        version=version,
        sha=hashlib.sha256(payload).hexdigest(),
        lib=SIM_LIB,
        body=body.replace("{lib}", SIM_LIB),
    )
    skip = header.count("\n") + 1
    return header.replace("__SKIP__", str(skip)).encode() + payload


def _run_files() -> dict[str, bytes]:
    return {
        ASCEND_DRIVER_RUN: _run_file(
            "Ascend 910B NPU driver",
            ASCEND_DRIVER,
            _ASCEND_DRIVER_BODY,
            {"npu-smi": "npu_smi", "hccn_tool": "hccn_tool"},
        ),
        ASCEND_FIRMWARE_RUN: _run_file(
            "Ascend 910B NPU firmware", ASCEND_FIRMWARE, _ASCEND_FIRMWARE_BODY, {}
        ),
        VASTAI_DRIVER_RUN: _run_file(
            "Vastai VA16 driver", VASTAI_DRIVER, _VASTAI_BODY, {"vasmi": "vasmi"}
        ),
    }


def installer_checksums() -> dict[str, str]:
    """sha256 of each .run installer the repository serves, by file name."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in _run_files().items()}


def role_checksums(sums: dict[str, str]) -> dict[str, dict[str, dict[str, str]]]:
    """The roles' checksum data for the installers with ``sums`` (file name -> sha256): the
    Ascend driver and firmware and the Vastai driver, each under its pinned version. An
    installer missing from ``sums`` is left out (validation then names it)."""
    entries = {
        "ascend_checksums": {
            "driver": (ASCEND_DRIVER, ASCEND_DRIVER_RUN),
            "firmware": (ASCEND_FIRMWARE, ASCEND_FIRMWARE_RUN),
        },
        "vastai_checksums": {"driver": (VASTAI_DRIVER, VASTAI_DRIVER_RUN)},
    }
    return {
        key: {
            artifact: {version: sums[run]} if run in sums else {}
            for artifact, (version, run) in artifacts.items()
        }
        for key, artifacts in entries.items()
    }


def _sha256_of(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def content_hash() -> str:
    """Hash of everything a build depends on: sim sources, this module, hardware versions."""
    h = hashlib.sha256()
    for p in [Path(__file__), Path(hardware.__file__), *sorted(SIM_DIR.glob("*.py"))]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def build_repository(dest: Path) -> RepositoryInfo:
    """Build (or reuse, when nothing changed) the lab repository in `dest`."""
    dest = Path(dest)
    packages = _packages()
    versions = {p.name: p.version for p in packages}
    digest = content_hash()
    stamp = dest / ".content-hash"
    debs = {p.name: dest / f"{p.name}_{p.version.split(':')[-1]}_all.deb" for p in packages}
    runs = {
        name: dest / name for name in (ASCEND_DRIVER_RUN, ASCEND_FIRMWARE_RUN, VASTAI_DRIVER_RUN)
    }
    sums = installer_checksums()
    fresh = stamp.is_file() and stamp.read_text().strip() == digest
    intact = all(_sha256_of(path) == sums[name] for name, path in runs.items())
    if fresh and intact and all(p.is_file() for p in debs.values()):
        return RepositoryInfo(dest, digest, versions, debs, runs, rebuilt=False, run_sha256=sums)
    dest.mkdir(parents=True, exist_ok=True)
    for old in [*dest.glob("*.deb"), *dest.glob("*.run")]:
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="ironserve-debs-") as work:
        built = [_build_deb(p, dest, Path(work)) for p in packages]
    index = _packages_index(dest, built)
    (dest / "Packages").write_text(index, encoding="utf-8")
    with gzip.GzipFile(dest / "Packages.gz", "wb", mtime=0) as gz:
        gz.write(index.encode())
    (dest / "Release").write_text(_release(dest), encoding="utf-8")
    for name, data in _run_files().items():
        runs[name].write_bytes(data)
        runs[name].chmod(0o755)
    stamp.write_text(digest + "\n", encoding="utf-8")
    return RepositoryInfo(dest, digest, versions, debs, runs, rebuilt=True, run_sha256=sums)


def node_base_files(hw: dict[str, object]) -> dict[str, tuple[bytes, int]]:
    """Files a node needs at creation, before any package: hardware.json and the base tools.

    For a lab that copies files (docker put_archive) instead of dpkg-installing BASE_PACKAGES.
    """
    import json

    base = next(p for p in _packages() if p.name == "ironserve-sim-base")
    files = dict(base.files)
    files["/usr/bin/lspci"] = (_script("lspci"), 0o755)
    files["/etc/ironserve-sim/hardware.json"] = (
        (json.dumps(hw, indent=2, sort_keys=True) + "\n").encode(),
        0o644,
    )
    return files
