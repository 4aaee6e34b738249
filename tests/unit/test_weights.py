"""Weights without nodes: the fan-out schedule, hub metadata read by the real clients from the
lab hub on loopback, the quick completeness check, the node-side pull script run locally (drop,
corrupt byte, gated), receivers' placing, and verification classes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironserve.lab.hub import repos as hub_repos
from ironserve.lab.hub.control import HubControl
from ironserve.lab.hub.server import Hub, serve_in_thread
from ironserve.roles.weights.deploy import authorized_line, pull_config, receive_command
from ironserve.weights import node_pull
from ironserve.weights.manifest import complete, missing_bytes, sums_text
from ironserve.weights.metadata import (
    RepoMeta,
    WeightFile,
    WeightsError,
    hf_files,
    hub_metadata,
    modelscope_files,
)
from ironserve.weights.schedule import fanout, rounds_for
from ironserve.weights.verify import classify

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "src" / "ironserve" / "catalog" / "data" / "models"
PUBLIC = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
GATED = "meta-llama/Llama-3.3-70B-Instruct"
SMALL = "lab/tiny-weights"
TOKEN = "hf_unit_test_token"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, HubControl]]:
    state = Hub(tmp_path_factory.mktemp("hub"), CATALOG)
    for spec in hub_repos.default_specs(TOKEN):
        state.add_repo(spec)
    state.add_repo(hub_repos.RepoSpec(SMALL, 2 << 20, 2))
    server = serve_in_thread(state)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, HubControl(url)
    server.shutdown()
    server.server_close()


@pytest.fixture
def control(hub: tuple[str, HubControl]) -> Iterator[HubControl]:
    ctl = hub[1]
    ctl.clear_faults()
    ctl.reset()
    yield ctl
    ctl.clear_faults()


# --- schedule -------------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [1, 2, 3, 4, 5, 8, 13])
def test_doubling_tree_reaches_everyone_in_log2_rounds(nodes: int) -> None:
    names = [f"n{i}" for i in range(nodes)]
    rounds = fanout(names[:1], names[1:])
    assert len(rounds) == rounds_for(nodes)
    have = {"n0"}
    for pairs in rounds:
        sources = [s for _, s in pairs]
        assert len(sources) == len(set(sources)), "a source serves one receiver per round"
        assert set(sources) <= have, "only nodes holding the weights serve"
        have |= {r for r, _ in pairs}
    assert have == set(names)
    if nodes == 8:
        assert [len(p) for p in rounds] == [1, 2, 4]


def test_nodes_already_holding_the_weights_serve_from_round_one() -> None:
    rounds = fanout(["a", "b", "c"], ["d", "e", "f", "g"])
    assert rounds == [[("d", "a"), ("e", "b"), ("f", "c")], [("g", "a")]]
    assert fanout(["a"], []) == []
    with pytest.raises(ValueError):
        fanout([], ["x"])


# --- metadata -------------------------------------------------------------------------------


def test_hf_and_modelscope_metadata_match_the_hub(hub: tuple[str, HubControl]) -> None:
    url, ctl = hub
    listed = ctl.repos()[PUBLIC]["files"]
    hf = hub_metadata("huggingface", url, PUBLIC, "main", None)
    ms = hub_metadata("modelscope", url, PUBLIC, "main", None)
    assert ms.revision == "master"
    assert hf.total_bytes == ms.total_bytes == ctl.repos()[PUBLIC]["total_bytes"]
    assert {f.path: f.size for f in hf.files} == {p: f["size"] for p, f in listed.items()}
    for f in hf.files:  # sha256 for LFS files, the git blob id for small ones
        assert (f.sha256 is None) == (not listed[f.path]["lfs"])
        assert f.sha256 or f.git_sha1
    assert {f.path: f.sha256 for f in ms.files} == {p: f["sha256"] for p, f in listed.items()}


@pytest.mark.parametrize(("kind", "which"), [("huggingface", "HF_TOKEN"), ("modelscope", "Model")])
def test_gated_repo_without_token_names_the_token(
    hub: tuple[str, HubControl], kind: str, which: str
) -> None:
    with pytest.raises(WeightsError) as error:
        hub_metadata(kind, hub[0], GATED, "main", None)
    assert "set hub_token_file" in str(error.value) and which in str(error.value)
    assert hub_metadata(kind, hub[0], GATED, "main", TOKEN).total_bytes > 0


def test_metadata_parsers() -> None:
    from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling
    from modelscope_hub import FileInfo

    lfs = BlobLfsInfo(size=10, sha256="a" * 64, pointer_size=130)
    siblings = [
        RepoSibling("w.safetensors", size=10, blob_id="b" * 40, lfs=lfs),
        RepoSibling("config.json", size=3, blob_id="c" * 40),
    ]
    assert hf_files(siblings) == (
        WeightFile("config.json", 3, None, "c" * 40),
        WeightFile("w.safetensors", 10, "a" * 64, None),
    )
    entries = [
        FileInfo(path="w", size=5, blob_id="d" * 64, type="blob", sha256="d" * 64),
        FileInfo(path="sub", size=0, blob_id="", type="tree"),
    ]
    assert modelscope_files(entries) == (WeightFile("w", 5, "d" * 64),)


# --- the quick check ------------------------------------------------------------------------

META = RepoMeta("huggingface", "o/m", "main", (WeightFile("a", 4, "s" * 64), WeightFile("b", 2)))


def _state(**over: object) -> dict[str, object]:
    manifest = {
        "repo_id": "o/m",
        "files": {
            "a": {"size": 4, "sha256": "s" * 64, "mtime_ns": 7},
            "b": {"size": 2, "sha256": "t" * 64, "mtime_ns": 8},
        },
    }
    return {"manifest": manifest, "stat": {"a": [4, 7], "b": [2, 8]}, "staging_bytes": 0} | over


def test_complete_needs_manifest_sizes_digests_and_mtimes() -> None:
    assert complete(META, _state()) and missing_bytes(META, _state()) == 0
    assert not complete(META, _state(manifest=None))
    assert not complete(META, _state(stat={"a": [4, 7], "b": [2, 9]}))  # touched since verified
    assert not complete(META, _state(stat={"a": [4, 7]}))  # a file gone
    bad = _state()
    bad["manifest"]["files"]["a"]["sha256"] = "x" * 64  # type: ignore[index]
    assert not complete(META, bad)
    assert missing_bytes(META, _state(manifest=None, staging_bytes=4)) == 2


def test_sums_text_is_sha256sum_format() -> None:
    assert sums_text({"b": "2" * 64, "a": "1" * 64}) == f"{'1' * 64}  a\n{'2' * 64}  b\n"


# --- the node-side script, run here against the loopback hub --------------------------------


def _config(tmp_path: Path, url: str, repo: str, kind: str = "huggingface") -> Path:
    meta = hub_metadata(kind, url, repo, "main", None)
    config = tmp_path / "weights.json"
    config.write_text(pull_config(meta, str(tmp_path / "dest" / repo), url, None, 3))
    return config


def test_seed_downloads_verifies_and_writes_the_manifest(
    hub: tuple[str, HubControl], control: HubControl, tmp_path: Path
) -> None:
    config = _config(tmp_path, hub[0], SMALL)
    shard = "model-00001-of-00002.safetensors"
    control.fault("corrupt", shard, after_bytes=1000)
    assert node_pull.main(["x", "seed", str(config)]) == 0
    dest = tmp_path / "dest" / SMALL
    assert not Path(f"{dest}.incoming").exists()
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=dest, check=True)
    manifest = json.loads((dest / "ironserve-manifest.json").read_text())
    files = control.repos()[SMALL]["files"]
    assert {p: e["sha256"] for p, e in manifest["files"].items()} == {
        p: f["sha256"] for p, f in files.items()
    }
    served = {p.rsplit("/", 1)[1]: n for p, n in control.stats()["files"].items()}
    assert served[shard] == 2 * files[shard]["size"]  # the corrupt copy was fetched again


def test_seed_never_accepts_a_file_that_stays_corrupt(
    hub: tuple[str, HubControl], control: HubControl, tmp_path: Path
) -> None:
    config = _config(tmp_path, hub[0], SMALL, "modelscope")
    control.fault("corrupt", "model-00002-of-00002.safetensors", count=20, after_bytes=10)
    assert node_pull.main(["x", "seed", str(config)]) == 1
    assert not (tmp_path / "dest" / SMALL).exists()


def test_place_refuses_a_peer_copy_that_differs_from_the_hub(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    staging = tmp_path / "m.incoming"
    staging.mkdir()
    (staging / "a").write_bytes(b"abcd")
    (staging / "SHA256SUMS").write_text(f"{'0' * 64}  a\n")
    meta = RepoMeta("huggingface", "o/m", "main", (WeightFile("a", 4, "f" * 64),))
    config = tmp_path / "c.json"
    config.write_text(pull_config(meta, str(dest), None, None, 1))
    assert node_pull.main(["x", "place", str(config)]) == 1
    assert not dest.exists()


def test_receive_command_checks_host_keys_and_sums_before_placing() -> None:
    command = receive_command("10.0.0.1", "root", "/w/m", "/k", "/kh", "/s.py", "/c.json")
    assert "StrictHostKeyChecking=yes" in command and "UserKnownHostsFile=/kh" in command
    # the source's forced rrsync roots the path at its weights folder
    assert "root@10.0.0.1:/ /w/m.incoming/" in command
    assert command.index("sha256sum -c") < command.index("place /c.json")


def test_fanout_key_runs_only_a_read_only_rsync_of_the_weights_folder() -> None:
    line = authorized_line("ssh-ed25519 AAAA", ["10.0.0.1", "10.0.0.2"], "g", "/w/m")
    assert line == (
        'command="/usr/bin/rrsync -ro /w/m",from="10.0.0.1,10.0.0.2",restrict '
        "ssh-ed25519 AAAA ironserve-weights-g"
    )
    # a folder that needs quoting stays one word for the shell sshd runs the command with
    odd = authorized_line("ssh-ed25519 AAAA", ["10.0.0.1"], "g", "/w/it's here")
    assert odd.startswith(r"""command="/usr/bin/rrsync -ro '/w/it'\"'\"'s here'",""")
    with pytest.raises(ValueError, match="backslash or control character"):
        authorized_line("ssh-ed25519 AAAA", ["10.0.0.1"], "g", "/w/m\nssh-ed25519 EVIL")


def test_classify_names_missing_and_corrupt_files() -> None:
    found = {"a": [4, "s" * 64, "x"], "b": None}
    report = classify("n1", "/w", META, found)
    assert (report.complete, report.missing, report.corrupt, report.ok) == (["a"], ["b"], [], False)
    found = {"a": [4, "z" * 64, "x"], "b": [2, "q", "y"]}
    report = classify("n1", "/w", META, found)
    assert report.corrupt == ["a"] and report.complete == ["b"]
