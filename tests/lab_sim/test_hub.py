"""The lab model hub, in-process on 127.0.0.1, driven by the real huggingface_hub and modelscope
clients (unmodified; HF through its endpoint with Xet disabled, as behind a mirror) and by raw
HTTP where a client hides what is being checked (ranges, per-client counters, faults)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ["HF_HUB_DISABLE_XET"] = "1"  # read when huggingface_hub is imported
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import httpx
import pytest
import requests
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download as hf_snapshot
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from modelscope import snapshot_download as ms_snapshot
from modelscope_hub.errors import (
    AuthenticationError,
    NotExistError,
    PermissionDeniedError,
)

from ironserve.lab.hub import repos as hub_repos
from ironserve.lab.hub.control import HubControl
from ironserve.lab.hub.server import Hub, HubServer, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "src" / "ironserve" / "catalog" / "data" / "models"
PUBLIC = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
GATED = "meta-llama/Llama-3.3-70B-Instruct"
SMALL = "lab/tiny-faults"  # 2 x 1 MiB shards for the fault and range tests
TOKEN = "hf_lab_test_token"
SHARD = "model-00001-of-00002.safetensors"
Served = tuple[str, HubControl]  # (base URL, control client)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("hub")
    state = Hub(data, CATALOG)
    for spec in hub_repos.default_specs(TOKEN):
        state.add_repo(spec)
    state.add_repo(hub_repos.RepoSpec(SMALL, 2 << 20, 2))
    server: HubServer = serve_in_thread(state)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, HubControl(url)
    server.shutdown()
    server.server_close()


@pytest.fixture
def control(hub: Served) -> Iterator[HubControl]:
    ctl = hub[1]
    ctl.clear_faults()
    ctl.limit(None)
    ctl.reset()
    yield ctl
    ctl.clear_faults()
    ctl.limit(None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.name: _sha256(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
    }


def _expected(control: HubControl, repo_id: str) -> dict[str, str]:
    files = control.repos()[repo_id]["files"]
    return {path: f["sha256"] for path, f in files.items() if not path.startswith(".")}


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length)), 8 + length


def _get(
    url: str, headers: dict[str, str] | None = None, source: str | None = None
) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=30, trust_env=False) as client:
        return client.get(url, headers=headers)


def _shard_url(url: str, repo: str = SMALL, name: str = SHARD) -> str:
    return f"{url}/{repo}/resolve/main/{name}"


# ---------------------------------------------------------------------------------------------
# Real clients: whole snapshots


def test_hf_snapshot_matches_hub_sha256_and_is_a_real_model(
    hub: Served, control: HubControl, tmp_path: Path
) -> None:
    url = hub[0]
    folder = Path(hf_snapshot(PUBLIC, endpoint=url, cache_dir=tmp_path / "hf"))
    expected = _expected(control, PUBLIC)
    assert _tree(folder) == expected
    assert len([n for n in expected if n.endswith(".safetensors")]) == 4
    # config.json is the catalog's real config of the model
    catalog = json.loads((CATALOG / "deepseek-ai--DeepSeek-R1-Distill-Llama-8B.json").read_text())
    assert json.loads((folder / "config.json").read_text()) == catalog["config"]
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        json.loads((folder / name).read_text())
    # safetensors: every tensor's bytes lie inside the file, back to back, to its very end
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    for shard in sorted(set(index["weight_map"].values())):
        header, start = _safetensors_header(folder / shard)
        spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
        assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert start + spans[-1][1] == (folder / shard).stat().st_size
        assert {k for k, v in index["weight_map"].items() if v == shard} == set(header) - {
            "__metadata__"
        }
    # the hub counted exactly the repo's bytes, all for this client
    stats = control.stats()
    total = control.repos()[PUBLIC]["total_bytes"]
    assert stats["total_bytes"] == stats["repos"][PUBLIC] == stats["clients"]["127.0.0.1"] == total


def test_hf_revisions_tag_and_commit(hub: Served, control: HubControl) -> None:
    url = hub[0]
    api = HfApi(endpoint=url)
    commit = control.repos()[PUBLIC]["commit"]
    info = api.model_info(PUBLIC, files_metadata=True)
    assert info.sha == commit
    assert info.siblings is not None
    shards = [s for s in info.siblings if s.rfilename.endswith(".safetensors")]
    sha = control.repos()[PUBLIC]["files"][shards[0].rfilename]["sha256"]
    assert shards[0].lfs is not None and shards[0].lfs.sha256 == sha
    assert api.model_info(PUBLIC, revision="v1.0").sha == commit
    tree = {f.path: f for f in api.list_repo_tree(PUBLIC, recursive=True)}
    assert set(tree) == set(control.repos()[PUBLIC]["files"])
    (info_of_shard,) = api.get_paths_info(PUBLIC, [shards[0].rfilename, "missing.json"])
    assert info_of_shard.lfs is not None and info_of_shard.lfs.sha256 == sha
    assert api.model_info(PUBLIC, revision=commit).sha == commit
    meta = get_hf_file_metadata(hf_hub_url(PUBLIC, shards[0].rfilename, endpoint=url))
    assert (meta.commit_hash, meta.etag, meta.size) == (commit, sha, shards[0].lfs.size)
    small = get_hf_file_metadata(hf_hub_url(PUBLIC, "config.json", revision="v1.0", endpoint=url))
    content = _get(hf_hub_url(PUBLIC, "config.json", endpoint=url)).content
    assert small.size == len(content) == control.repos()[PUBLIC]["files"]["config.json"]["size"]
    assert small.etag == hub_repos.git_blob_sha1(content)  # small files: the git blob id


def test_modelscope_snapshot_matches_hub_sha256(
    hub: Served, control: HubControl, tmp_path: Path
) -> None:
    folder = Path(ms_snapshot(PUBLIC, endpoint=hub[0], cache_dir=str(tmp_path / "ms")))
    assert _tree(folder) == _expected(control, PUBLIC)
    folder = Path(
        ms_snapshot(PUBLIC, revision="v1.0", endpoint=hub[0], local_dir=str(tmp_path / "tag"))
    )
    assert _tree(folder) == _expected(control, PUBLIC)
    assert control.stats()["repos"][PUBLIC] == 2 * control.repos()[PUBLIC]["total_bytes"]
    revisions = _get(f"{hub[0]}/api/v1/models/{PUBLIC}/revisions").json()["Data"]["RevisionMap"]
    assert [t["Revision"] for t in revisions["Tags"]] == ["v1.0"]


# ---------------------------------------------------------------------------------------------
# Gated repos and 404s


def test_hf_gated_needs_the_token(hub: Served, tmp_path: Path) -> None:
    url = hub[0]
    with pytest.raises(GatedRepoError) as missing:
        hf_snapshot(GATED, endpoint=url, cache_dir=tmp_path / "a", token=False)
    assert missing.value.response is not None and missing.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as wrong:
        hf_snapshot(GATED, endpoint=url, cache_dir=tmp_path / "b", token="hf_wrong")
    assert wrong.value.response is not None and wrong.value.response.status_code == 403
    with pytest.raises(GatedRepoError):
        hf_hub_download(GATED, "config.json", endpoint=url, cache_dir=tmp_path / "c", token=False)
    folder = Path(hf_snapshot(GATED, endpoint=url, cache_dir=tmp_path / "d", token=TOKEN))
    assert (folder / "model-00002-of-00002.safetensors").stat().st_size > 0


def test_modelscope_gated_needs_the_token(hub: Served, tmp_path: Path) -> None:
    # modelscope's compat layer re-raises the hub client's auth errors as requests' HTTPError
    with pytest.raises(requests.HTTPError) as missing:
        ms_snapshot(GATED, endpoint=hub[0], cache_dir=str(tmp_path / "a"))
    assert isinstance(missing.value.__cause__, AuthenticationError)
    assert missing.value.response is not None and missing.value.response.status_code == 401
    with pytest.raises(requests.HTTPError) as wrong:
        ms_snapshot(GATED, endpoint=hub[0], cache_dir=str(tmp_path / "b"), token="wrong")
    assert isinstance(wrong.value.__cause__, PermissionDeniedError)
    folder = ms_snapshot(GATED, endpoint=hub[0], cache_dir=str(tmp_path / "c"), token=TOKEN)
    assert (Path(folder) / "config.json").is_file()


def test_hf_404s(hub: Served, tmp_path: Path) -> None:
    url = hub[0]
    with pytest.raises(RepositoryNotFoundError):
        hf_snapshot("nobody/nothing", endpoint=url, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        hf_snapshot(PUBLIC, revision="v9.9", endpoint=url, cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(PUBLIC, "no-such-file.bin", endpoint=url, cache_dir=tmp_path)


def test_modelscope_404s(hub: Served, tmp_path: Path) -> None:
    for repo, revision in (("nobody/nothing", None), (PUBLIC, "v9.9")):
        with pytest.raises(requests.HTTPError) as error:  # modelscope's compat wrapping
            ms_snapshot(repo, revision=revision, endpoint=hub[0], cache_dir=str(tmp_path))
        assert isinstance(error.value.__cause__, NotExistError)
    response = _get(f"{hub[0]}/api/v1/models/{PUBLIC}/repo?Revision=master&FilePath=nope")
    assert response.status_code == 404 and response.json()["Success"] is False


# ---------------------------------------------------------------------------------------------
# Ranges, counters


def test_range_answers_206_on_both_apis(hub: Served, control: HubControl) -> None:
    url, size = hub[0], control.repos()[SMALL]["files"][SHARD]["size"]
    whole = _get(_shard_url(url)).content
    assert len(whole) == size
    part = _get(_shard_url(url), {"Range": "bytes=1000-"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert part.content == whole[1000:]
    ms = f"{url}/api/v1/models/{SMALL}/repo?Revision=master&FilePath={SHARD}"
    tail = _get(ms, {"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    assert _get(ms, {"Range": f"bytes={size}-"}).status_code == 416


def test_stats_count_body_bytes_per_client(hub: Served, control: HubControl) -> None:
    url = hub[0]
    _get(_shard_url(url), source="127.0.0.2")
    _get(_shard_url(url), {"Range": "bytes=0-99"}, source="127.0.0.3")
    size = control.repos()[SMALL]["files"][SHARD]["size"]
    stats = control.stats()
    assert stats["clients"] == {"127.0.0.2": size, "127.0.0.3": 100}
    assert stats["total_bytes"] == size + 100 and stats["requests"] == 2
    control.reset()
    assert control.stats()["total_bytes"] == 0


# ---------------------------------------------------------------------------------------------
# Faults and the bandwidth cap


def test_drop_then_the_hf_client_resumes_with_a_range(
    hub: Served, control: HubControl, tmp_path: Path
) -> None:
    control.add_repo("lab/resume", total_bytes=24 << 20, shards=1)
    name = "model-00001-of-00001.safetensors"
    size = control.repos()["lab/resume"]["files"][name]["size"]
    control.reset()
    after = 15 << 20
    control.fault("drop", name, after_bytes=after)
    path = hf_hub_download("lab/resume", name, endpoint=hub[0], cache_dir=tmp_path)
    assert _sha256(Path(path)) == control.repos()["lab/resume"]["files"][name]["sha256"]
    stats = control.stats()
    assert stats["faults_fired"]["drop"] == 1
    # The client keeps what it had written (whole DOWNLOAD_CHUNK_SIZE pieces) and asks for the
    # rest with a Range: only the piece it had not written yet crosses the link twice.
    chunk = hf_constants.DOWNLOAD_CHUNK_SIZE
    assert stats["files"][f"lab/resume/{name}"] == size + after % chunk < 2 * size


def test_drop_cuts_the_body_at_the_offset(hub: Served, control: HubControl) -> None:
    control.fault("drop", SHARD, after_bytes=12345)
    with pytest.raises(httpx.HTTPError):
        _get(_shard_url(hub[0]))
    assert control.stats()["total_bytes"] == 12345
    assert control.faults() == []  # count=1: spent
    assert len(_get(_shard_url(hub[0])).content) == control.repos()[SMALL]["files"][SHARD]["size"]


def test_corrupt_flips_one_byte_once(hub: Served, control: HubControl) -> None:
    url = hub[0]
    clean = _get(_shard_url(url)).content
    control.fault("corrupt", "*.safetensors", after_bytes=5000)
    bad = _get(_shard_url(url)).content
    assert len(bad) == len(clean)
    assert [i for i in range(len(clean)) if bad[i] != clean[i]] == [5000]
    assert _get(_shard_url(url)).content == clean


def test_modelscope_rejects_a_corrupt_byte_and_refetches(
    hub: Served, control: HubControl, tmp_path: Path
) -> None:
    sha = control.repos()[SMALL]["files"][SHARD]["sha256"]
    control.fault("corrupt", SHARD)
    folder = Path(ms_snapshot(SMALL, endpoint=hub[0], local_dir=str(tmp_path)))
    assert _sha256(folder / SHARD) == sha
    stats = control.stats()
    assert stats["faults_fired"]["corrupt"] == 1
    assert stats["files"][f"{SMALL}/{SHARD}"] == 2 * control.repos()[SMALL]["files"][SHARD]["size"]


def test_slow_delays_the_matching_response(hub: Served, control: HubControl) -> None:
    control.fault("slow", SHARD, delay_s=0.6)
    started = time.monotonic()
    _get(_shard_url(hub[0]))
    assert time.monotonic() - started >= 0.6
    assert control.stats()["faults_fired"]["slow"] == 1


def test_bandwidth_cap_is_one_link_for_all_clients(hub: Served, control: HubControl) -> None:
    control.limit(2 << 20)  # 2 MiB/s
    names = [SHARD, "model-00002-of-00002.safetensors"]  # 1 MiB each, fetched at the same time
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        bodies = list(pool.map(lambda n: _get(_shard_url(hub[0], name=n)).content, names))
    elapsed = time.monotonic() - started
    assert [len(b) for b in bodies] == [1 << 20, 1 << 20]
    assert elapsed >= 0.9  # 2 MiB at 2 MiB/s together: 1 s (a per-connection cap: 0.5 s)
    control.limit(None)
    started = time.monotonic()
    _get(_shard_url(hub[0]))
    # Uncapped, 1 MiB over loopback: well under the 0.5 s that even a per-connection cap would take
    # (a busy machine only adds delay, so the margin is the whole half second).
    assert time.monotonic() - started < 0.5


# ---------------------------------------------------------------------------------------------
# Control API, generation


def test_add_repo_at_runtime_gated_with_tags(
    hub: Served, control: HubControl, tmp_path: Path
) -> None:
    made = control.add_repo(
        "lab/runtime", total_bytes=3 << 20, shards=3, gated=True, token="t0k",
        revision_tags=["r1"],
    )  # fmt: skip
    assert made["total_bytes"] > 3 << 20 and made["gated"]
    assert "lab/runtime" in control.repos()
    with pytest.raises(GatedRepoError):
        hf_snapshot("lab/runtime", endpoint=hub[0], cache_dir=tmp_path / "x", token=False)
    folder = Path(
        hf_snapshot("lab/runtime", revision="r1", endpoint=hub[0], cache_dir=tmp_path, token="t0k")
    )
    assert _tree(folder) == _expected(control, "lab/runtime")
    with pytest.raises(RuntimeError, match="400"):
        control.add_repo("no-owner")
    with pytest.raises(RuntimeError, match="400"):
        control.fault("explode", "*")


def test_generation_is_deterministic_and_streams(tmp_path: Path) -> None:
    spec = hub_repos.RepoSpec("lab/det", 40 << 20, 2)
    a = hub_repos.generate(tmp_path / "a", spec, None)
    b = hub_repos.generate(tmp_path / "b", spec, None)
    assert a.commit == b.commit
    assert {p: f.sha256 for p, f in a.files.items()} == {p: f.sha256 for p, f in b.files.items()}
    shard = a.root / "model-00001-of-00002.safetensors"
    assert shard.stat().st_size == 20 << 20
    assert _sha256(shard) == a.files[shard.name].sha256
    # not padding of zeros: incompressible-looking bytes, distinct from one MiB to the next
    with shard.open("rb") as f:
        f.seek(8 << 20)
        one, two = f.read(1 << 20), f.read(1 << 20)
    assert one != two and one.count(0) < len(one) // 64
    # a second start with the same spec reuses the files (no rewrite)
    mtime = shard.stat().st_mtime_ns
    assert hub_repos.generate(tmp_path / "a", spec, None).commit == a.commit
    assert shard.stat().st_mtime_ns == mtime
    blob = (a.root / "config.json").read_bytes()
    assert a.files["config.json"].blob_id == hub_repos.git_blob_sha1(blob)


def test_server_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """As in the lab's base image: the package alone as `labhub`, no site-packages (-S)."""
    (tmp_path / "labhub").symlink_to(ROOT / "src" / "ironserve" / "lab" / "hub")
    token = tmp_path / "token"
    token.write_text("tok\n")
    process = subprocess.Popen(
        [sys.executable, "-S", "-m", "labhub.server", "--data", str(tmp_path / "data"),
         "--host", "127.0.0.1", "--port", "0", "--catalog", str(CATALOG),
         "--token-file", str(token), "--defaults"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert "serving on 127.0.0.1:" in lines[-1], lines
        port = int(lines[-1].rsplit(":", 1)[1])
        repos = HubControl(f"http://127.0.0.1:{port}").repos()
        assert sorted(repos) == sorted([GATED, PUBLIC]) and repos[GATED]["gated"]
    finally:
        process.kill()
        process.wait()
