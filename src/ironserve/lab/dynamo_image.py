"""The lab's NVIDIA Dynamo images: the runtime (real Dynamo 1.6.1, mocker workers), etcd and NATS.

- ``ironserve-lab/dynamo-vllm-runtime:v1.6.1``, what the lab's Dynamo inventory names as
  ``engine_image``: the lab base with a venv holding ``ai-dynamo`` and ``ai-dynamo-runtime``
  1.6.1 from PyPI (``ai-dynamo`` without its dependencies, then those dependencies minus
  ``aisimulate``, a stub that downloads from NVIDIA's index and is imported only for the
  ``--ais-*`` options; measured in ../shared/reference/real-engines.md). ``python3 -m
  dynamo.frontend`` is the real frontend and KV router; ``python3 -m dynamo.vllm`` is the lab's
  stand-in (lab/engine/dynamo_vllm_cli.py: the argv checked against Dynamo's and the pinned vLLM's
  flag tables, then ``dynamo.mocker``, Dynamo's own GPU-less engine simulator), because the real
  module needs vLLM's CUDA build.
- ``ironserve-lab/etcd:v3.4.23`` and ``ironserve-lab/nats:v2.9.10``
  (``dynamo_etcd_image``, ``dynamo_nats_image``): Debian bookworm's ``etcd-server`` and
  ``nats-server`` packages on the lab base, the real programs; the NATS image's entrypoint is
  ``nats-server`` as in NATS's own image, etcd's command starts with ``etcd`` as in quay.io's.

Each is cached by a content hash like the other lab images and built under the machine-wide
build lock. A lab publishes them only when it serves Dynamo (``lab up --dynamo``,
$IRONSERVE_LAB_DYNAMO=1: lab/registry.py), so other labs never wait for them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ironserve.lab import engine_image as ei
from ironserve.lab import images as img

VERSION = "1.6.1"
# ai-dynamo's Requires-Dist (1.6.1), without aisimulate; the runtime's own need uvloop and
# pydantic<=2.13.5 (its Rust core's bindings).
DEPENDENCIES = [
    f"ai-dynamo-runtime=={VERSION}",
    "aiohttp>=3.14.3,<4.0",
    "certifi>=2026.10.19",
    "kubernetes>=32.0.1,<33.0.0",
    "msgspec>=0.19.0",
    "prometheus-client>=0.23.1,<1.0",
    "pyzmq>=26.0.0",
    "redis>=6.2.0,<9.0.0",
    "tqdm>=4.0.0",
    "transformers>=4.56.0",
    "typing-extensions>=4.10.0",
    "zstandard>=0.23.0,<1.0",
    "pydantic<=2.13.5",
    "uvloop",
]
WITHOUT_DEPS = [f"ai-dynamo=={VERSION}"]
VENV = "/opt/dynamo"
SITE = f"{VENV}/lib/python3.11/site-packages"  # bookworm's CPython 3.11
VENV_REPO = "ironserve-lab-dynamo-venv"
RUNTIME_REPO = "ironserve-lab-dynamo"
RUNTIME_REPOSITORY = "ironserve-lab/dynamo-vllm-runtime"
STANDIN_PREFIX = "/opt/ironserve-engine/python"

ETCD_VERSION = "3.4.23"  # bookworm's etcd-server
NATS_VERSION = "2.9.10"  # bookworm's nats-server
ETCD_REPOSITORY = "ironserve-lab/etcd"
NATS_REPOSITORY = "ironserve-lab/nats"

# One layer: the venv from the wheels this machine's pip fetched (every dependency resolved by
# it; installed --no-deps, so ai-dynamo's aisimulate is never asked for), the real dynamo.vllm
# removed (its place taken by the stand-in in the next layer); pip's bytecode kept (the lab's
# engine images: lab/engine_image.py).
VENV_SCRIPT = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -o Acquire::Check-Valid-Until=false update -qq
apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
rm -rf /var/lib/apt/lists/*
python3 -m venv {venv}
{venv}/bin/pip install -q --no-index --no-deps --disable-pip-version-check /wheels/*.whl
test -d {site}/dynamo/mocker
rm -rf {site}/dynamo/vllm
{venv}/bin/python3 -c 'import dynamo.frontend, dynamo.mocker'
rm -rf /root/.cache
"""

RUNTIME_DOCKERFILE = """FROM {venv_image}
ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONPATH={prefix} \\
    PYTHONDONTWRITEBYTECODE=1 \\
    IRONSERVE_LAB_DYNAMO_VERSION={version}
COPY python {prefix}
COPY dynamo_vllm {site}/dynamo/vllm
WORKDIR /
"""

STANDIN_MAIN = '''"""ironserve lab: `python3 -m dynamo.vllm`, the stand-in worker (lab/engine)."""

from ironserve.lab.engine.dynamo_vllm_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
'''

# Debian's packages, with no service started by their maintainer scripts in the build.
PACKAGE_SCRIPT = """set -e
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
apt-get -o Acquire::Check-Valid-Until=false update -qq
apt-get install -y -qq --no-install-recommends {package} >/dev/null
rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d
{check}
"""
SERVICES = {
    # name: (package, version check, repository, version, the image's entrypoint and command)
    "etcd": (
        "etcd-server",
        f"etcd --version | grep -F 'etcd Version: {ETCD_VERSION}'",
        ETCD_REPOSITORY,
        ETCD_VERSION,
        ['CMD ["etcd"]', "WORKDIR /"],
    ),
    "nats": (
        "nats-server",
        f"nats-server --version | grep -F 'v{NATS_VERSION}'",
        NATS_REPOSITORY,
        NATS_VERSION,
        ['ENTRYPOINT ["nats-server"]', 'CMD ["--help"]', "WORKDIR /"],
    ),
}


def _standin_files() -> dict[str, tuple[bytes, int]]:
    """The runtime layer's context: the stand-in worker, its flag tables, the dynamo.vllm
    module that starts it (also what the layer's hash covers)."""
    files: dict[str, tuple[bytes, int]] = {
        "python/ironserve/__init__.py": (b"", 0o644),
        "python/ironserve/lab/__init__.py": (b"", 0o644),
        "python/ironserve/lab/engine/__init__.py": (b"", 0o644),
        "dynamo_vllm/__init__.py": (b"", 0o644),
        "dynamo_vllm/__main__.py": (STANDIN_MAIN.encode(), 0o644),
    }
    for name in ("flags.py", "dynamo_vllm_cli.py"):
        data = (ei.ENGINE_SOURCE / name).read_bytes()
        files[f"python/ironserve/lab/engine/{name}"] = (data, 0o644)
    for name in ("dynamo.json", "vllm.json"):
        data = (ei.FLAG_TABLES / name).read_bytes()
        files[f"python/ironserve/catalog/data/engines/{name}"] = (data, 0o644)
    return files


def _venv_script() -> str:
    return VENV_SCRIPT.format(venv=VENV, site=SITE)


def venv_tag(base: str) -> str:
    recipe = img._digest(base, _venv_script(), *DEPENDENCIES, *WITHOUT_DEPS)
    return f"{VENV_REPO}:{recipe}"


def _runtime_dockerfile(venv_image: str) -> str:
    return RUNTIME_DOCKERFILE.format(
        venv_image=venv_image, venv=VENV, prefix=STANDIN_PREFIX, version=VERSION, site=SITE
    )


def runtime_tag(base: str) -> str:
    dockerfile = _runtime_dockerfile(venv_tag(base))
    parts = [part for name, (data, _) in _standin_files().items() for part in (name, data)]
    return f"{RUNTIME_REPO}:{img._digest(dockerfile, *parts)}"


def ensure_runtime(client: Any, base: str) -> ei.EngineImage:
    """The Dynamo runtime image, built (once) when its content hash is not there."""
    venv, wanted = venv_tag(base), runtime_tag(base)
    if not img.exists(client, wanted):
        with img.build_lock():
            if not img.exists(client, venv):
                started = time.monotonic()
                ei._log(f"building {venv} (ai-dynamo {VERSION} from PyPI; a minute or two, once)")
                wheels = ei.download_wheels(
                    f"ai-dynamo-{VERSION}", DEPENDENCIES, without_deps=WITHOUT_DEPS
                )
                ei.build_in_container(
                    client, base, venv, _venv_script(), wheels, "dynamo-venv", ["WORKDIR /"]
                )
                ei._log(f"{venv} built in {time.monotonic() - started:.1f}s")
            if not img.exists(client, wanted):
                files = {"Dockerfile": (_runtime_dockerfile(venv).encode(), 0o644)}
                ei.build(client, wanted, files | _standin_files(), "dynamo")
    return ei.EngineImage("dynamo", VERSION, wanted, RUNTIME_REPOSITORY)


def _service_script(name: str) -> str:
    package, check, *_ = SERVICES[name]
    return PACKAGE_SCRIPT.format(package=package, check=check)


def service_tag(base: str, name: str) -> str:
    return f"ironserve-lab-{name}:{img._digest(base, _service_script(name))}"


def ensure_service(client: Any, base: str, name: str) -> ei.EngineImage:
    """etcd's or NATS's image (Debian bookworm's package), built (once) when missing."""
    _, _, repository, version, changes = SERVICES[name]
    wanted = service_tag(base, name)
    if not img.exists(client, wanted):
        with img.build_lock():
            if not img.exists(client, wanted):
                started = time.monotonic()
                with tempfile.TemporaryDirectory() as empty:  # no wheels to mount
                    ei.build_in_container(
                        client, base, wanted, _service_script(name), Path(empty), name, changes
                    )
                ei._log(f"{wanted} built in {time.monotonic() - started:.1f}s")
    return ei.EngineImage(name, version, wanted, repository)


def ensure_all(client: Any, base: str) -> list[ei.EngineImage]:
    """The runtime, etcd and NATS images a Dynamo lab publishes."""
    return [ensure_runtime(client, base), *(ensure_service(client, base, n) for n in SERVICES)]


def references() -> dict[str, str]:
    """The lab inventory's keys -> the images' names under the lab registry."""
    return {
        "engine_image": f"{RUNTIME_REPOSITORY}:v{VERSION}",
        "dynamo_etcd_image": f"{ETCD_REPOSITORY}:v{ETCD_VERSION}",
        "dynamo_nats_image": f"{NATS_REPOSITORY}:v{NATS_VERSION}",
    }
