"""Lab model repositories: generated on disk, deterministic for a given spec (stdlib only).

A repo holds what a real model repo holds: ``config.json`` (the catalog's real config for known
ids, else a small llama config), tokenizer files, ``model.safetensors.index.json`` and N shards
in the real safetensors layout (8-byte little-endian header length, JSON header, data): a few
tiny named tensors plus one ``U8`` padding tensor that brings the shard to its size. Shards are
written by streaming 1 MiB blocks (never the whole file in memory) and hashed as they are
written; the manifest next to the files records sizes, sha256 and git blob ids, so a restart
with the same spec reuses the files without hashing them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
MIN_SHARD_BYTES = 4096
MANIFEST_VERSION = 1
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")  # what real repos track with git-lfs


@dataclass(frozen=True)
class RepoSpec:
    repo_id: str  # "owner/name", the same on both APIs
    total_bytes: int = 32 << 20  # of the shards together; the small files come on top
    shards: int = 4
    gated: bool = False
    token: str | None = None  # the accepted token of a gated repo
    revision_tags: tuple[str, ...] = ("v1.0",)
    # A folder holding a real model's files, served as they are (no generated shards).
    source: str | None = None
    # A hostile hub's listing: names listed beside the real files (e.g. "../../etc/cron.d/x"),
    # never served, so that tests can prove a client refuses them before any download.
    unsafe_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        parts = self.repo_id.split("/")
        if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts):
            raise ValueError(f"repo_id must be 'owner/name', got {self.repo_id!r}")
        if self.shards < 1:
            raise ValueError(f"shards must be >= 1, got {self.shards}")
        if self.total_bytes < self.shards * MIN_SHARD_BYTES:
            raise ValueError(
                f"total_bytes must be >= {MIN_SHARD_BYTES} per shard, got {self.total_bytes}"
            )
        if self.gated and not self.token:
            raise ValueError(f"{self.repo_id}: a gated repo needs its accepted token")
        if not all(isinstance(n, str) for n in self.unsafe_names):
            raise ValueError("unsafe_names must be strings")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RepoSpec:
        known = {
            *("repo_id", "total_bytes", "shards", "gated", "token", "revision_tags"),
            "unsafe_names",
        }
        unknown = set(doc) - known
        if unknown:
            raise ValueError(f"unknown repo field(s): {', '.join(sorted(unknown))}")
        if "repo_id" not in doc:
            raise ValueError("repo_id is required")
        return cls(
            repo_id=str(doc["repo_id"]),
            total_bytes=int(doc.get("total_bytes", cls.total_bytes)),
            shards=int(doc.get("shards", cls.shards)),
            gated=bool(doc.get("gated", False)),
            token=doc.get("token") or None,
            revision_tags=tuple(str(t) for t in doc.get("revision_tags", ("v1.0",))),
            unsafe_names=tuple(doc.get("unsafe_names", ())),
        )

    def content_key(self) -> dict[str, Any]:
        """What the bytes depend on (not the token): equal keys, equal files."""
        if self.source is not None:
            listing = [[p.name, p.stat().st_size] for p in _source_files(Path(self.source))]
            return {"repo_id": self.repo_id, "source": listing}
        return {"repo_id": self.repo_id, "total_bytes": self.total_bytes, "shards": self.shards}


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    sha256: str
    blob_id: str  # git blob sha1 of the file, or of its LFS pointer
    lfs: bool
    pointer_size: int = 0

    @property
    def etag(self) -> str:
        """What the Hub puts in ETag / X-Linked-Etag: sha256 for LFS files, else the blob id."""
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class Repo:
    spec: RepoSpec
    root: Path
    commit: str
    files: dict[str, RepoFile] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())

    def revisions(self) -> set[str]:
        return {"main", "master", self.commit, *self.spec.revision_tags}

    def listing(self) -> list[RepoFile]:
        """What the hub's APIs list: the files, plus the spec's unsafe names (never served)."""
        phantom = b"x\n"
        digest = hashlib.sha256(phantom).hexdigest()
        listed = {
            name: RepoFile(name, len(phantom), digest, git_blob_sha1(phantom), False)
            for name in self.spec.unsafe_names
        }
        return [f for _, f in sorted((listed | self.files).items())]

    def describe(self) -> dict[str, Any]:
        return {
            "repo_id": self.spec.repo_id,
            "commit": self.commit,
            "gated": self.spec.gated,
            "shards": self.spec.shards,
            "revision_tags": list(self.spec.revision_tags),
            "unsafe_names": list(self.spec.unsafe_names),
            "total_bytes": self.total_bytes,
            "files": {
                f.path: {"size": f.size, "sha256": f.sha256, "lfs": f.lfs}
                for f in sorted(self.files.values(), key=lambda f: f.path)
            },
        }


# ---------------------------------------------------------------------------------------------
# Content


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def _llama_config(repo_id: str) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "max_position_embeddings": 4096,
        "vocab_size": 1024,
        "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "_name_or_path": repo_id,
    }


def model_config(repo_id: str, catalog: Path | None) -> dict[str, Any]:
    """The catalog's real config.json for a known model id, else a small llama config."""
    if catalog is not None:
        path = catalog / (repo_id.replace("/", "--") + ".json")
        if path.is_file():
            config = json.loads(path.read_text()).get("config")
            if isinstance(config, dict):
                return config
    return _llama_config(repo_id)


def _tokenizer() -> dict[str, Any]:
    """A small but valid `tokenizers` BPE tokenizer (bytes of printable ASCII)."""
    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2}
    for i, ch in enumerate(chr(c) for c in range(32, 127)):
        vocab[ch] = i + 3
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for t, i in (("<s>", 0), ("</s>", 1), ("<unk>", 2))
        ],
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "vocab": vocab,
                  "merges": []},
    }  # fmt: skip


def small_files(spec: RepoSpec, catalog: Path | None) -> dict[str, bytes]:
    def js(doc: Any) -> bytes:
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": f"# {spec.repo_id}\n\nA lab model made by the ironserve lab hub.\n".encode(),
        "config.json": js(model_config(spec.repo_id, catalog)),
        "generation_config.json": js({"bos_token_id": 1, "eos_token_id": 2, "do_sample": True,
                                      "temperature": 0.6, "top_p": 0.95}),
        "tokenizer.json": js(_tokenizer()),
        "tokenizer_config.json": js({"bos_token": "<s>", "eos_token": "</s>",
                                     "unk_token": "<unk>", "model_max_length": 4096,
                                     "tokenizer_class": "PreTrainedTokenizerFast"}),
    }  # fmt: skip


def shard_name(k: int, n: int) -> str:
    return f"model-{k:05d}-of-{n:05d}.safetensors"


def _shard_sizes(spec: RepoSpec) -> list[int]:
    base, extra = divmod(spec.total_bytes, spec.shards)
    return [base + (1 if k < extra else 0) for k in range(spec.shards)]


def _tiny_tensors(k: int) -> list[tuple[str, str, list[int], bytes]]:
    """(name, dtype, shape, data): two small BF16 weights per shard, bytes from their names."""
    out = []
    for name in (
        f"model.layers.{k}.self_attn.q_proj.weight",
        f"model.layers.{k}.mlp.up_proj.weight",
    ):
        data = hashlib.sha256(name.encode()).digest() * 4  # 128 bytes = 8 x 8 bf16
        out.append((name, "BF16", [8, 8], data))
    return out


def _shard_header(k: int, size: int) -> tuple[bytes, list[tuple[str, str, list[int], bytes]], int]:
    """(header bytes incl. the 8-byte length, tiny tensors, padding bytes) for a shard of `size`."""
    tensors = _tiny_tensors(k)
    tiny = sum(len(t[3]) for t in tensors)

    def header(padding: int) -> bytes:
        doc: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, dtype, shape, data in tensors:
            doc[name] = {
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + len(data)],
            }
            offset += len(data)
        doc[f"lab.padding.{k}"] = {
            "dtype": "U8", "shape": [padding], "data_offsets": [offset, offset + padding]
        }  # fmt: skip
        return json.dumps(doc, separators=(",", ":")).encode()

    # The padding's digit count changes the header length: size the header for the largest
    # candidate, then pad it with spaces (the format allows trailing whitespace) to 8 bytes.
    room = len(header(size))
    room += -room % 8
    padding = size - 8 - room - tiny
    if padding < 0:
        raise ValueError(f"shard {k}: {size} bytes is too small for its header")
    text = header(padding).ljust(room, b" ")
    return struct.pack("<Q", len(text)) + text, tensors, padding


def _noise_block(seed: str) -> bytes:
    """1 MiB of deterministic incompressible bytes (sha256 in counter mode)."""
    h = hashlib.sha256(seed.encode()).digest()
    return b"".join(
        hashlib.sha256(h + i.to_bytes(4, "little")).digest() for i in range(CHUNK // 32)
    )


def write_shard(path: Path, spec: RepoSpec, k: int, size: int) -> tuple[str, dict[str, str]]:
    """Stream shard k to `path`; returns (sha256, {tensor name: shard file name})."""
    head, tensors, padding = _shard_header(k, size)
    block = bytearray(_noise_block(f"{spec.repo_id}#{k}"))
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for piece in [head, *(t[3] for t in tensors)]:
            f.write(piece)
            digest.update(piece)
        written, i = 0, 0
        while written < padding:
            # Each 1 MiB block differs from the last (its index in the first 8 bytes).
            block[0:8] = i.to_bytes(8, "little")
            n = min(CHUNK, padding - written)
            view = memoryview(block)[:n]
            f.write(view)
            digest.update(view)
            written, i = written + n, i + 1
    name = shard_name(k + 1, spec.shards)
    weight_map = {t[0]: name for t in tensors} | {f"lab.padding.{k}": name}
    return digest.hexdigest(), weight_map


# ---------------------------------------------------------------------------------------------
# On disk


def _entry(path: str, data_sha256: str, size: int, blob: bytes | None) -> RepoFile:
    lfs = path.endswith(LFS_SUFFIXES)
    if lfs:
        pointer = lfs_pointer(data_sha256, size)
        return RepoFile(path, size, data_sha256, git_blob_sha1(pointer), True, len(pointer))
    assert blob is not None
    return RepoFile(path, size, data_sha256, git_blob_sha1(blob), False)


def _commit_of(spec: RepoSpec, files: dict[str, RepoFile]) -> str:
    listing = sorted((f.path, f.sha256) for f in files.values())
    return hashlib.sha1(json.dumps([spec.content_key(), listing]).encode()).hexdigest()


def _folder(data: Path, repo_id: str) -> Path:
    return data / "repos" / repo_id.replace("/", "--")


def _load_manifest(root: Path, spec: RepoSpec) -> Repo | None:
    try:
        doc = json.loads((root / ".lab-manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if doc.get("version") != MANIFEST_VERSION or doc.get("content") != spec.content_key():
        return None
    files = {f["path"]: RepoFile(**f) for f in doc["files"]}
    for f in files.values():
        try:
            if (root / f.path).stat().st_size != f.size:
                return None
        except OSError:
            return None
    return Repo(spec, root, doc["commit"], files)


def _source_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _copy_source(spec: RepoSpec, tmp: Path) -> dict[str, RepoFile]:
    """A real model's files, copied in 1 MiB blocks and hashed as they are copied."""
    assert spec.source is not None
    files: dict[str, RepoFile] = {}
    for src in _source_files(Path(spec.source)):
        digest, size, small = hashlib.sha256(), 0, bytearray()
        with src.open("rb") as fin, (tmp / src.name).open("wb") as fout:
            while block := fin.read(CHUNK):
                fout.write(block)
                digest.update(block)
                size += len(block)
                if not src.name.endswith(LFS_SUFFIXES):
                    small += block
        files[src.name] = _entry(src.name, digest.hexdigest(), size, bytes(small))
    return files


def generate(data: Path, spec: RepoSpec, catalog: Path | None) -> Repo:
    """The repo's files under ``data/repos/<owner>--<name>/`` (reused when already generated)."""
    root = _folder(data, spec.repo_id)
    existing = _load_manifest(root, spec)
    if existing is not None:
        return existing
    tmp = root.with_name(root.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if spec.source is not None:
        return _finish(spec, root, tmp, _copy_source(spec, tmp))
    files: dict[str, RepoFile] = {}
    for path, blob in small_files(spec, catalog).items():
        (tmp / path).write_bytes(blob)
        files[path] = _entry(path, hashlib.sha256(blob).hexdigest(), len(blob), blob)
    weight_map: dict[str, str] = {}
    tensor_bytes = 0
    for k, size in enumerate(_shard_sizes(spec)):
        name = shard_name(k + 1, spec.shards)
        sha, tensors = write_shard(tmp / name, spec, k, size)
        files[name] = _entry(name, sha, size, None)
        weight_map |= tensors
        tensor_bytes += size - 8 - struct.unpack("<Q", (tmp / name).open("rb").read(8))[0]
    index = json.dumps(
        {"metadata": {"total_size": tensor_bytes}, "weight_map": dict(sorted(weight_map.items()))},
        indent=2,
    ).encode()
    (tmp / "model.safetensors.index.json").write_bytes(index)
    files["model.safetensors.index.json"] = _entry(
        "model.safetensors.index.json", hashlib.sha256(index).hexdigest(), len(index), index
    )
    return _finish(spec, root, tmp, files)


def _finish(spec: RepoSpec, root: Path, tmp: Path, files: dict[str, RepoFile]) -> Repo:
    """The manifest beside the files, then ``tmp`` moved into place as the repo's folder."""
    commit = _commit_of(spec, files)
    manifest = {
        "version": MANIFEST_VERSION,
        "content": spec.content_key(),
        "commit": commit,
        "files": [asdict(f) for f in files.values()],
    }
    (tmp / ".lab-manifest.json").write_text(json.dumps(manifest, indent=1))
    old = root.with_name(root.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if root.exists():
        root.rename(old)
    tmp.rename(root)
    shutil.rmtree(old, ignore_errors=True)
    return Repo(spec, root, commit, files)


def default_specs(gated_token: str, models: Path | None = None) -> list[RepoSpec]:
    """The repos every lab hub starts with: two synthetic ones, and each real model folder
    under ``models`` (named ``owner--name``, served as it is)."""
    real = [
        RepoSpec(folder.name.replace("--", "/", 1), source=str(folder))
        for folder in (sorted(models.iterdir()) if models is not None else [])
        if folder.is_dir() and "--" in folder.name and _source_files(folder)
    ]
    return [
        RepoSpec("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", 32 << 20, 4),
        RepoSpec("meta-llama/Llama-3.3-70B-Instruct", 8 << 20, 2, gated=True, token=gated_token),
        *real,
    ]
