"""The lab engine images: what a node pulls as ``vllm/vllm-openai:vX``, ``lmsysorg/sglang:vX``,
``nvcr.io/nvidia/tensorrt-llm/release:X`` or ``quay.io/ascend/vllm-ascend:vX``.

Three layers of images, each cached by a content hash of what goes into it (as lab/images.py):

- ray: the lab base image + python3-venv + a pinned Ray from PyPI (the slow part, ~1-2 min);
- engine: ray + the lab engine package (ironserve.lab.engine, stdlib only) and the engines' flag
  tables, with ``vllm`` and ``trtllm-serve`` on the PATH and ``python3 -m
  sglang.launch_server`` importable (vLLM-Ascend's image is vLLM's command on other devices);
- one per (engine, version): engine + ENV naming them (a metadata-only layer), so the same
  program refuses the flags of the version its tag claims.

Nothing here touches a running lab; lab/registry.py pushes these to the lab registry.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironserve.lab import images as img

RAY_VERSION = os.environ.get("IRONSERVE_LAB_RAY_VERSION", "2.60.0")
RAY_REPO = "ironserve-lab-ray"
ENGINE_REPO = "ironserve-lab-engine"
PREFIX = "/opt/ironserve-engine"
VENV = f"{PREFIX}/venv"
PYTHONPATH = f"{PREFIX}/python"
ENGINE_SOURCE = Path(__file__).resolve().parent / "engine"
FLAG_TABLES = Path(__file__).resolve().parent.parent / "catalog" / "data" / "engines"

# The Ray layer is made by running this in a container of the base image with the wheels
# (downloaded on this machine by its own pip, whose proxy and CA settings the build lacks)
# mounted read-only, then committing it: one layer, no wheel files left in the image. pip's
# bytecode stays: every Ray daemon and `ray status` would compile Ray again (its CLI: 1.1 s of
# CPU against 0.4 s).
RAY_SCRIPT = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -o Acquire::Check-Valid-Until=false update -qq
apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
rm -rf /var/lib/apt/lists/*
python3 -m venv {venv}
{venv}/bin/pip install -q --no-index --find-links /wheels --disable-pip-version-check ray=={ray}
rm -rf /root/.cache
"""
# Wheels for the nodes' Python (bookworm: CPython 3.11, glibc 2.36): every manylinux tag it runs.
PIP_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "linux_x86_64",
    "any",
)

# Ray: no usage reports (the lab reaches nothing outside), no warning about container CPUs.
ENGINE_DOCKERFILE = """FROM {ray}
ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONPATH={pythonpath} \\
    PYTHONDONTWRITEBYTECODE=1 \\
    IRONSERVE_LAB_LOG_TO_PID1=1 \\
    RAY_USAGE_STATS_ENABLED=0 \\
    RAY_DISABLE_DOCKER_CPU_WARNING=1
COPY python {pythonpath}
COPY vllm /usr/local/bin/vllm
COPY trtllm-serve /usr/local/bin/trtllm-serve
RUN chmod 0755 /usr/local/bin/vllm /usr/local/bin/trtllm-serve
WORKDIR /
"""

TAG_DOCKERFILE = """FROM {engine}
ENV IRONSERVE_LAB_ENGINE={kind} IRONSERVE_LAB_ENGINE_VERSION={version}
{entrypoint}
"""

VLLM_SCRIPT = f"""#!/bin/sh
# ironserve lab engine: the `vllm` command line (serve only)
exec {VENV}/bin/python3 -m ironserve.lab.engine.vllm_cli "$@"
"""

TRTLLM_SCRIPT = f"""#!/bin/sh
# ironserve lab engine: the `trtllm-serve` command line (serve only, one node)
exec {VENV}/bin/python3 -m ironserve.lab.engine.trtllm_cli "$@"
"""

SGLANG_SHIM = '''"""ironserve lab engine: `python3 -m sglang.launch_server`."""

from ironserve.lab.engine.sglang_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
'''

# Where each engine's image lives (the builders' names, catalog/engines.py image(), under a
# registry without its host).
REPOSITORIES = {
    "vllm": "vllm/vllm-openai",
    "sglang": "lmsysorg/sglang",
    "trtllm": "nvcr.io/nvidia/tensorrt-llm/release",
    "vllm_ascend": "quay.io/ascend/vllm-ascend",
}
# The tag's prefix before the version: NVIDIA tags TensorRT-LLM's releases without a "v".
TAG_PREFIX = {"trtllm": ""}


@dataclass(frozen=True)
class EngineImage:
    kind: str  # vllm | sglang | trtllm | vllm_ascend | gateway
    version: str
    local: str  # the content-hashed local tag
    repository: str  # vllm/vllm-openai

    @property
    def tag(self) -> str:
        """``v0.11.0``; TensorRT-LLM's ``1.2.1``."""
        return f"{TAG_PREFIX.get(self.kind, 'v')}{self.version}"

    @property
    def reference(self) -> str:
        """``vllm/vllm-openai:v0.11.0``: the name under a registry."""
        return f"{self.repository}:{self.tag}"


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def _engine_files() -> dict[str, tuple[bytes, int]]:
    """The build context of the engine layer (also what its hash covers)."""
    files: dict[str, tuple[bytes, int]] = {
        "python/ironserve/__init__.py": (b"", 0o644),
        "python/ironserve/lab/__init__.py": (b"", 0o644),
        "python/sglang/__init__.py": (b"", 0o644),
        "python/sglang/launch_server.py": (SGLANG_SHIM.encode(), 0o644),
        "vllm": (VLLM_SCRIPT.encode(), 0o755),
        "trtllm-serve": (TRTLLM_SCRIPT.encode(), 0o755),
    }
    for path in sorted(ENGINE_SOURCE.glob("*.py")):
        files[f"python/ironserve/lab/engine/{path.name}"] = (path.read_bytes(), 0o644)
    for name in ("vllm.json", "sglang.json", "trtllm.json"):
        data = (FLAG_TABLES / name).read_bytes()
        files[f"python/ironserve/catalog/data/engines/{name}"] = (data, 0o644)
    return files


def cache_dir() -> Path:
    """What outlives labs: the Ray wheels, the registry's storage."""
    return Path(os.environ.get("IRONSERVE_LAB_CACHE_DIR", "/var/lib/ironserve-lab"))


def _ray_script() -> str:
    return RAY_SCRIPT.format(venv=VENV, ray=RAY_VERSION)


def ray_tag(base: str) -> str:
    return f"{RAY_REPO}:{img._digest(base, _ray_script())}"


def download_wheels(
    name: str, requirements: list[str], without_deps: list[str] | None = None
) -> Path:
    """``requirements`` and their dependencies as CPython 3.11 (bookworm's) Linux wheels, by
    this machine's own pip (its index, proxy, CA and find-links settings), cached by ``name``;
    ``without_deps``: more wheels, fetched alone (a package whose declared dependencies cannot
    all be installed, ai-dynamo's)."""
    import subprocess

    alone = list(without_deps or [])
    digest = img._digest(*requirements, *(f"--no-deps {r}" for r in alone))
    folder = cache_dir() / "wheels" / f"{name}-cp311-{digest}"
    if (folder / ".complete").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PIP_PLATFORMS for arg in ("--platform", p)]
    for wanted, deps in ((requirements, []), (alone, ["--no-deps"])):
        if not wanted:
            continue
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:"),
                *("--python-version", "3.11", "--implementation", "cp", *platforms, *deps),
                *("-d", str(folder), *wanted),
            ],
            check=True,
            stderr=subprocess.PIPE,  # pip's warnings about this machine's index settings: noise
        )
    (folder / ".complete").write_text(" ".join(requirements + alone) + "\n")
    return folder


def build_in_container(
    client: Any, base: str, tag: str, script: str, wheels: Path, role: str, changes: list[str]
) -> None:
    """Run ``script`` in a container of ``base`` with ``wheels`` mounted read-only at /wheels,
    then commit it as ``tag``: one layer, no wheel file left in the image."""
    container = client.containers.run(
        base,
        ["/bin/sh", "-c", script],
        detach=True,
        volumes={str(wheels): {"bind": "/wheels", "mode": "ro"}},
        labels={img.IMAGE_LABEL: f"{role}-build"},
    )
    try:
        result = container.wait()
        if result.get("StatusCode") != 0:
            logs = container.logs(tail=20).decode(errors="replace")
            raise RuntimeError(f"building {tag} failed:\n{logs}")
        repository, version = tag.split(":")
        container.commit(
            repository=repository,
            tag=version,
            changes=[f"LABEL {img.IMAGE_LABEL}={role}", *changes],
        )
    finally:
        container.remove(force=True)


def build_ray(client: Any, base: str, tag: str) -> None:
    wheels = download_wheels(f"ray-{RAY_VERSION}", [f"ray=={RAY_VERSION}"])
    build_in_container(client, base, tag, _ray_script(), wheels, "ray", ['CMD ["/bin/bash"]'])


def engine_tag(ray: str) -> str:
    dockerfile = _engine_dockerfile(ray)
    parts = [part for name, (data, mode) in _engine_files().items() for part in (name, data)]
    return f"{ENGINE_REPO}:{img._digest(dockerfile, *parts)}"


def _engine_dockerfile(ray: str) -> str:
    return ENGINE_DOCKERFILE.format(ray=ray, venv=VENV, pythonpath=PYTHONPATH)


def _tag_dockerfile(engine: str, kind: str, version: str) -> str:
    # vLLM's image starts `vllm serve` by default; SGLang's, TensorRT-LLM's (NVIDIA's
    # entrypoint script only) and vLLM-Ascend's have no serving entrypoint of their own.
    entrypoint = 'ENTRYPOINT ["vllm", "serve"]' if kind == "vllm" else ""
    return TAG_DOCKERFILE.format(engine=engine, kind=kind, version=version, entrypoint=entrypoint)


def build(client: Any, tag: str, files: dict[str, tuple[bytes, int]], role: str) -> None:
    """The legacy builder through the SDK, from an in-memory context."""
    stream = client.api.build(
        fileobj=img.tar_context(files),
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        pull=False,
        labels={img.IMAGE_LABEL: role},
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error']}")


def ensure_engine(client: Any, base: str) -> str:
    """The engine image (ray + lab engine), built only when its content hash is not an image."""
    ray = ray_tag(base)
    engine = engine_tag(ray)
    if img.exists(client, engine):
        return engine
    with img.build_lock():
        if not img.exists(client, ray):
            started = time.monotonic()
            _log(f"building {ray} (python3-venv, ray=={RAY_VERSION} from PyPI; a minute or two)")
            build_ray(client, base, ray)
            _log(f"{ray} built in {time.monotonic() - started:.1f}s")
        if not img.exists(client, engine):
            files = {"Dockerfile": (_engine_dockerfile(ray).encode(), 0o644), **_engine_files()}
            build(client, engine, files, "engine")
            _log(f"built {engine}")
    return engine


def ensure_tagged(client: Any, engine: str, kind: str, version: str) -> EngineImage:
    """The image of one engine version: ``engine`` plus the ENV naming kind and version."""
    if kind not in REPOSITORIES:
        raise ValueError(f"no lab engine image for {kind!r}; known: {', '.join(REPOSITORIES)}")
    dockerfile = _tag_dockerfile(engine, kind, version)
    local = f"{ENGINE_REPO}-{kind}:{img._digest(dockerfile)}"
    if not img.exists(client, local):
        with img.build_lock():
            if not img.exists(client, local):
                files = {"Dockerfile": (dockerfile.encode(), 0o644)}
                build(client, local, files, f"engine-{kind}")
    return EngineImage(kind=kind, version=version, local=local, repository=REPOSITORIES[kind])


# The vLLM the lab offers on its stand-in for the Ray path: the last release before vLLM's own
# multi-node launch (0.12) whose images carry Ray.
RAY_STANDIN_VLLM = "0.11.0"


def wanted_versions() -> list[tuple[str, str]]:
    """(kind, version) of every engine image a lab offers: the real vLLM (lab/vllm_image.py),
    vLLM on Ray (the stand-in), the defaults of SGLang, TensorRT-LLM and vLLM-Ascend (the
    stand-in), plus ``$IRONSERVE_LAB_ENGINE_VERSIONS`` (``vllm=0.10.2,sglang=0.5.4``,
    stand-ins)."""
    from ironserve.catalog.engines import ENGINES, EngineKind
    from ironserve.lab import vllm_image

    wanted = [
        ("vllm", vllm_image.VERSION),
        ("vllm", RAY_STANDIN_VLLM),
        ("sglang", ENGINES[EngineKind.SGLANG].default_version),
        ("trtllm", ENGINES[EngineKind.TRTLLM].default_version),
        ("vllm_ascend", ENGINES[EngineKind.VLLM_ASCEND].default_version),
    ]
    for item in os.environ.get("IRONSERVE_LAB_ENGINE_VERSIONS", "").split(","):
        kind, _, version = item.strip().partition("=")
        if kind and version and (kind, version.lstrip("v")) not in wanted:
            wanted.append((kind, version.lstrip("v")))
    return wanted
