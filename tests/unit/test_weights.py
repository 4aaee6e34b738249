"""Weights without nodes: who streams from whom, hub metadata read by the real clients from the
lab hub on loopback, the quick completeness check, the node-side pull script run locally (the
seed's download: drop, corrupt byte, gated; a receiver's stream loop over a local upstream; the
progress file refusing names the hub did not list), and verification classes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.lab.hub import repos as hub_repos
from ironserve.lab.hub.control import HubControl
from ironserve.lab.hub.server import Hub, serve_in_thread
from ironserve.roles.weights.deploy import (
    authorized_line,
    pull_config,
    seed_command,
    stream_command,
)
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
from ironserve.weights.schedule import hops, upstreams
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


@pytest.mark.parametrize("nodes", [1, 2, 3, 4, 5, 8, 13, 16])
def test_every_receiver_streams_from_one_node_that_serves_at_most_two(nodes: int) -> None:
    names = [f"n{i}" for i in range(nodes)]
    up = upstreams(names[:1], names[1:])
    assert set(up) == set(names[1:])
    served = [up.values()].pop()
    assert all(list(served).count(s) <= 2 for s in set(served))
    for receiver, source in up.items():  # an upstream comes earlier: the tree has no cycle
        assert names.index(source) < names.index(receiver)

    def depth(node: str) -> int:
        return 0 if node == "n0" else 1 + depth(up[node])

    assert max(map(depth, names)) == hops(nodes)
    assert hops(nodes) == {1: 0, 2: 1, 3: 1, 4: 2, 5: 2, 8: 3, 13: 3, 16: 4}[nodes]


def test_nodes_already_holding_the_weights_serve_first() -> None:
    up = upstreams(["a", "b", "c"], ["d", "e", "f", "g", "h", "i", "j"])
    assert up == {
        "d": "a",
        "e": "a",
        "f": "b",
        "g": "b",
        "h": "c",
        "i": "c",
        "j": "d",
    }
    assert upstreams(["a"], []) == {}
    with pytest.raises(ValueError):
        upstreams([], ["x"])


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
    dest = tmp_path / "dest" / SMALL
    assert not (dest / "model-00002-of-00002.safetensors").exists()  # never at the final path
    assert not (dest / "ironserve-manifest.json").exists()
    assert "gave up" in (dest / node_pull.FAILED).read_text()  # the downstream nodes stop


# --- the stream: a receiver's loop, over a local stand-in for the upstream's rrsync -----------


class LocalUpstream(node_pull.Upstream):
    """The upstream's weights folder on this machine: ``pull`` copies what the forced
    ``rrsync -ro <dest>`` would send (the listed files it holds), nothing else changes."""

    def __init__(self, folder: Path, work: Path, before_poll: Any = None) -> None:
        super().__init__(f"root@{folder}", "/k", "/kh", work)
        self.folder, self.before_poll, self.polls, self.pulls = folder, before_poll, 0, 0

    def pull(self, names: list[str], into: Path, timeout: float) -> bool:
        if names[:2] == [node_pull.READY, node_pull.FAILED]:
            if self.before_poll:
                self.before_poll(self.polls)
            self.polls += 1
        else:
            self.pulls += 1
        for name in names:
            if (self.folder / name).is_file():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.folder / name, into / name)
        return True

    def close(self) -> None:
        pass


def _stream_config(tmp_path: Path, files: dict[str, bytes], attempts: int = 2) -> Path:
    meta = RepoMeta(
        "huggingface",
        "o/m",
        "main",
        tuple(
            WeightFile(n, len(b), hashlib.sha256(b).hexdigest()) for n, b in sorted(files.items())
        ),
    )
    config = tmp_path / "c.json"
    config.write_text(pull_config(meta, str(tmp_path / "node" / "m"), None, None, attempts))
    return config


def _cfg(config: Path) -> dict[str, Any]:
    return dict(json.loads(config.read_text()))


FILES = {"a.safetensors": b"a" * 1000, "sub/b.safetensors": b"b" * 3000, "config.json": b"{}"}


def test_a_receiver_takes_each_file_as_its_upstream_announces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream announces one file per poll (as its download goes): the receiver places each
    as it comes, announces it in its own progress file, ends with the manifest."""
    monkeypatch.setattr(node_pull, "POLL_S", 0)
    up = tmp_path / "up"
    order = sorted(FILES)

    def announce(poll: int) -> None:
        ready = ["run r1", *order[: poll + 1]]
        (up / node_pull.READY).write_text("".join(f"{n}\n" for n in ready))
        for name in order[: poll + 1]:
            (up / name).parent.mkdir(parents=True, exist_ok=True)
            (up / name).write_bytes(FILES[name])
        (up / "unlisted").write_bytes(b"never pulled")

    up.mkdir()
    config = _stream_config(tmp_path, FILES)
    upstream = LocalUpstream(up, tmp_path, announce)
    assert node_pull.stream(_cfg(config), "r1", upstream, False) == 0
    dest = tmp_path / "node" / "m"
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=dest, check=True)
    assert (dest / node_pull.READY).read_text() == "run r1\n" + "".join(f"{n}\n" for n in order)
    assert not (dest / "unlisted").exists() and not Path(f"{dest}.incoming").exists()
    assert upstream.polls == len(order)  # one round trip per announcement: status and files


def test_a_receiver_ignores_an_earlier_runs_progress_and_stops_on_this_runs_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_pull, "POLL_S", 0)
    up = tmp_path / "up"
    up.mkdir()
    for name, data in FILES.items():  # a stale run's files and progress: not this run's news
        (up / name).parent.mkdir(parents=True, exist_ok=True)
        (up / name).write_bytes(data)
    (up / node_pull.READY).write_text("run old\n" + "".join(f"{n}\n" for n in FILES))

    def fail(poll: int) -> None:
        if poll == 2:
            (up / node_pull.FAILED).write_text("run r2\nthe seed gave up: x never verified\n")

    config = _stream_config(tmp_path, FILES)
    assert node_pull.stream(_cfg(config), "r2", LocalUpstream(up, tmp_path, fail), False) == 1
    dest = tmp_path / "node" / "m"
    assert not any((dest / n).exists() for n in FILES)
    why = (dest / node_pull.FAILED).read_text()  # its own downstream stops too
    assert why.startswith("run r2\nupstream root@") and "x never verified" in why


def test_a_receiver_never_places_a_copy_that_differs_from_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_pull, "POLL_S", 0)
    up = tmp_path / "up"
    up.mkdir()
    for name, data in FILES.items():
        (up / name).parent.mkdir(parents=True, exist_ok=True)
        (up / name).write_bytes(data.upper() if name == "a.safetensors" else data)
    config = _stream_config(tmp_path, FILES, attempts=2)
    assert node_pull.stream(_cfg(config), "r3", LocalUpstream(up, tmp_path), True) == 1
    dest = tmp_path / "node" / "m"
    assert not (dest / "a.safetensors").exists() and not (dest / node_pull.MANIFEST).exists()
    assert (dest / "config.json").read_bytes() == b"{}"  # the good ones are in place
    assert "never matched the hub's digest" in (dest / node_pull.FAILED).read_text()


def test_a_receiver_killed_mid_stream_keeps_its_verified_files_and_completes_from_a_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_pull, "POLL_S", 0)
    holder = tmp_path / "holder"
    for name, data in FILES.items():
        (holder / name).parent.mkdir(parents=True, exist_ok=True)
        (holder / name).write_bytes(data)
    dest = tmp_path / "node" / "m"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub/b.safetensors").write_bytes(FILES["sub/b.safetensors"])  # landed before the kill
    copied: list[str] = []

    class Counting(LocalUpstream):
        def pull(self, names: list[str], into: Path, timeout: float) -> bool:
            copied.extend(names)
            return super().pull(names, into, timeout)

    config = _stream_config(tmp_path, FILES)
    assert node_pull.stream(_cfg(config), "r4", Counting(holder, tmp_path), True) == 0
    assert sorted(copied) == ["a.safetensors", "config.json"]  # the held file is not copied
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=dest, check=True)


def test_a_link_from_a_peer_is_never_a_verified_file(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"{}")
    (tmp_path / "config.json").symlink_to(tmp_path / "real")
    f = {"path": "config.json", "size": 2, "sha256": hashlib.sha256(b"{}").hexdigest()}
    assert node_pull.check(tmp_path / "real", f)
    assert not node_pull.check(tmp_path / "config.json", f)


def test_pace_backs_off_without_news_and_asks_when_the_next_file_is_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(node_pull.time, "monotonic", lambda: now[0])
    pace = node_pull.Pace()
    assert [pace.pause(1 << 20) for _ in range(5)] == [0.15, 0.3, 0.6, 1.0, 1.0]
    pace.news(1000)  # the small files
    now[0] += 2.0
    pace.news(1000 + (80 << 20))  # a shard of 80 MiB after 2 s: 40 MiB/s
    assert pace.pause(80 << 20) == pytest.approx(1.0)  # due in 2 s: at most POLL_MAX_S
    now[0] += 1.5
    assert pace.pause(80 << 20) == pytest.approx(0.8 * 0.5)  # due in 0.5 s: a little before
    now[0] += 0.6
    assert pace.pause(80 << 20) == 0.15  # late: back off from the start
    assert pace.pause(80 << 20) == 0.3


@pytest.mark.parametrize(
    "hostile",
    ["../../etc/cron.d/x", "/root/.ssh/authorized_keys", "a.safetensors/../../x", "unlisted"],
)
def test_progress_names_the_hub_did_not_list_are_refused(hostile: str) -> None:
    listed = set(FILES)
    text = f"run r\na.safetensors\n{hostile}\n"
    with pytest.raises(node_pull.UnsafePath, match="does not list"):
        node_pull.parse_progress(text, "r", listed)


def test_progress_counts_complete_lines_of_this_run_only() -> None:
    listed = set(FILES)
    assert node_pull.parse_progress("run r\na.safetensors\nconf", "r", listed) == [
        "a.safetensors"
    ]  # the half-appended last line waits for its newline
    assert node_pull.parse_progress("run old\na.safetensors\n", "r", listed) is None
    assert node_pull.parse_progress("run r", "r", listed) is None
    assert node_pull.parse_progress("", "r", listed) is None
    assert node_pull.failure_of("run r\nwhy\n", "r") == "why"
    assert node_pull.failure_of("run old\nwhy\n", "r") is None


def test_stream_commands_quote_every_value_and_carry_no_secret() -> None:
    command = stream_command("/s.py", "/c.json", "r1", "root@10.0.0.1", False, "/k it's", "/kh")
    assert command == (
        "python3 /s.py stream /c.json --run r1 --from root@10.0.0.1 "
        "--key '/k it'\"'\"'s' --known-hosts /kh"
    )
    assert stream_command("/s", "/c", "r", "u@h", True, "/k", "/kh").endswith("--from-complete")
    assert seed_command("/opt/v", "/s.py", "/c.json", "r1") == (
        "/opt/v/bin/python /s.py seed /c.json --run r1"
    )


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
