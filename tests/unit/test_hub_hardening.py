"""A hostile or broken hub, without nodes: the listing's file names are checked before anything is
downloaded (both APIs, through the lab hub on loopback), the node-side pull script proves every
path it touches lies inside its folders, and `ironserve weights pull|verify` turn a bad listing, a
bad endpoint, a missing token file or an unreachable hub into one line and an exit code."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ironserve.cli import app
from ironserve.lab.hub import repos as hub_repos
from ironserve.lab.hub.server import Hub, serve_in_thread
from ironserve.roles.weights.deploy import pull_config
from ironserve.weights import node_pull
from ironserve.weights.metadata import (
    RepoMeta,
    WeightFile,
    WeightsError,
    WeightsInputError,
    hub_metadata,
    read_token,
)
from ironserve.weights.names import unsafe_reason

HOSTILE = "lab/hostile-listing"
TRAVERSAL = "../../../../../etc/cron.d/ironserve-x"
ABSOLUTE = "/root/.ssh/authorized_keys"
NEWLINE = "evil\n" + "0" * 64 + "  /etc/shadow"
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # a catalog model, for the CLI's inventory


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = Hub(tmp_path_factory.mktemp("hub"))
    state.add_repo(hub_repos.RepoSpec(HOSTILE, 64 << 10, 2, unsafe_names=(TRAVERSAL, ABSOLUTE)))
    state.add_repo(hub_repos.RepoSpec(MODEL, 64 << 10, 2, unsafe_names=(NEWLINE,)))
    server = serve_in_thread(state)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- the name rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        TRAVERSAL,
        "weights/../../x",
        "..",
        ABSOLUTE,
        NEWLINE,
        "a\rb",
        "tab\there",
        "del\x7f",
        "c1\x85",
        "dir\\..\\x",
        "a//b",
        "./config.json",
        "dir/",
        "SHA256SUMS",
        "ironserve-manifest.json",
        ".cache/huggingface/download/x.metadata",
        None,
    ],
)
def test_unsafe_names_are_refused(name: object) -> None:
    assert unsafe_reason(name) is not None


@pytest.mark.parametrize(
    "name",
    ["config.json", "original/params.json", ".gitattributes", "a..b", "model-00001.safetensors"],
)
def test_ordinary_names_pass(name: str) -> None:
    assert unsafe_reason(name) is None


@pytest.mark.parametrize("kind", ["huggingface", "modelscope"])
def test_a_listing_with_traversal_names_is_refused_naming_hub_and_name(hub: str, kind: str) -> None:
    with pytest.raises(WeightsInputError) as error:
        hub_metadata(kind, hub, HOSTILE, "main", None)
    message = str(error.value)
    assert hub in message and kind in message and repr(TRAVERSAL) in message
    assert "(and 1 more)" in message and "\n" not in message


def test_a_name_with_a_newline_is_refused_on_one_line(hub: str) -> None:
    with pytest.raises(WeightsInputError) as error:
        hub_metadata("huggingface", hub, MODEL, "main", None)
    assert "\n" not in str(error.value) and "evil\\n" in str(error.value)


@pytest.mark.parametrize("endpoint", ["not a url", "http://", "ftp://hub.example", "hub:80"])
def test_an_endpoint_that_is_not_a_url_is_bad_input(endpoint: str) -> None:
    with pytest.raises(WeightsInputError, match="is not an http"):
        hub_metadata("huggingface", endpoint, MODEL, "main", None)


@pytest.mark.parametrize("kind", ["huggingface", "modelscope"])
def test_an_unreachable_hub_is_one_line_and_not_bad_input(
    kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(WeightsError) as error:
        hub_metadata(kind, endpoint, MODEL, "main", None)
    assert not isinstance(error.value, WeightsInputError)
    assert f"{kind} hub {endpoint}" in str(error.value) and "\n" not in str(error.value)
    assert capfd.readouterr().err == ""  # the client's retries log nothing of their own


def test_a_token_file_that_is_the_token_itself_is_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(WeightsInputError) as error:
        read_token(Path("hf_TheTokenItselfNotAPath"))
    assert "TheTokenItself" not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__
    directory = tmp_path / "hf_DirectoryToken"
    directory.mkdir()
    with pytest.raises(WeightsInputError) as error:
        read_token(directory)
    assert "DirectoryToken" not in str(error.value)


# --- the node-side script: every path proven inside its folder ------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed_config(tmp_path: Path, names: list[str], command: str = "seed") -> tuple[Path, Path]:
    """A pull config listing ``names`` (5 bytes each) against a hub that is not there."""
    dest = tmp_path / "models" / "o" / "m"
    files = tuple(WeightFile(n, 5, "e" * 64) for n in names)
    config = tmp_path / "weights.json"
    config.write_text(
        pull_config(RepoMeta("huggingface", "o/m", "main", files), str(dest), None, None, 2)
    )
    doc = json.loads(config.read_text())
    doc["endpoint"] = f"http://127.0.0.1:{free_port()}"
    config.write_text(json.dumps(doc))
    return config, dest


STREAM = ["--run", "r", "--from", "root@10.0.0.1", "--key", "/k", "--known-hosts", "/kh"]


@pytest.mark.parametrize("command", [["seed"], ["stream", *STREAM]], ids=["seed", "stream"])
def test_node_pull_never_touches_a_file_outside_its_folders(
    tmp_path: Path, command: list[str]
) -> None:
    victim = tmp_path / "victim" / "important.txt"
    victim.parent.mkdir()
    victim.write_text("not five bytes long")  # the 'wrong-sized file' the old cleanup removed
    absolute = tmp_path / "absolute.txt"
    absolute.write_text("also the wrong size")
    # dest is tmp/models/o/m, staging tmp/models/o/m.incoming: four levels up is tmp_path
    names = ["../../../victim/important.txt", str(absolute)]
    config, dest = _seed_config(tmp_path, names)
    assert node_pull.main(["x", command[0], str(config), *command[1:]]) == node_pull.UNSAFE_EXIT
    assert victim.read_text() == "not five bytes long"
    assert absolute.read_text() == "also the wrong size"
    assert not dest.exists() and not Path(f"{dest}.incoming").exists()


def test_node_pull_refuses_a_path_through_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_text("wrong size, outside")
    config, dest = _seed_config(tmp_path, ["link/x"])
    dest.mkdir(parents=True)
    (dest / "link").symlink_to(outside)
    assert node_pull.main(["x", "seed", str(config)]) == node_pull.UNSAFE_EXIT
    assert (outside / "x").read_text() == "wrong size, outside"


def test_node_pull_refuses_a_name_that_would_break_sha256sums(tmp_path: Path) -> None:
    config, dest = _seed_config(tmp_path, ["config.json", NEWLINE])
    assert node_pull.main(["x", "seed", str(config)]) == node_pull.UNSAFE_EXIT
    assert not Path(f"{dest}.incoming").exists() and not (dest / "SHA256SUMS").exists()


def test_inside_allows_nested_names_and_refuses_the_folder_itself(tmp_path: Path) -> None:
    assert node_pull.inside(tmp_path, "a/b.json") == tmp_path.resolve() / "a" / "b.json"
    for name in ("", ".", "a/../..", "/etc/passwd"):
        with pytest.raises(node_pull.UnsafePath):
            node_pull.inside(tmp_path, name)


# --- the CLI: one line and an exit code, before any node ------------------------------------


def _inventory(tmp_path: Path, **group: object) -> Path:
    """One node nobody listens for (port 1): any attempt to reach it fails the command."""
    key = tmp_path / "api-key"
    key.write_text("VLLM_API_KEY=sk-unit\n")
    key.chmod(0o600)
    (tmp_path / "group_data").mkdir()
    values = {
        "model_id": MODEL,
        "model_weights_dir": "/data/models",
        "engine_kind": "vllm",
        "accelerator_kind": "h100-80g",
        "accelerator_count": 1,
        "hub_kind": "huggingface",
        "serving_api_key_file": str(key),
    } | group
    (tmp_path / "group_data" / "site.py").write_text(
        "".join(f"{k} = {v!r}\n" for k, v in values.items())
    )
    host = {"ssh_hostname": "127.0.0.1", "ssh_port": 1, "node_role": "head", "node_ip": "10.9.0.1"}
    inventory = tmp_path / "site.py"
    inventory.write_text(f"nodes = [('n0', {host!r})]\n")
    return inventory


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize("command", ["pull", "verify"])
def test_cli_refuses_a_hostile_listing_with_exit_2(hub: str, tmp_path: Path, command: str) -> None:
    inventory = _inventory(tmp_path, hub_endpoint=hub)
    code, output = _run("weights", command, "-i", str(inventory))
    assert code == 2, output
    assert "evil\\n" in output and hub in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["pull", "verify"])
def test_cli_unreachable_hub_exits_1_in_one_line(tmp_path: Path, command: str) -> None:
    inventory = _inventory(tmp_path, hub_endpoint=f"http://127.0.0.1:{free_port()}")
    code, output = _run("weights", command, "-i", str(inventory))
    assert code == 1, output
    assert "could not be read" in output and len(output.strip().splitlines()) == 1


def test_cli_never_prints_a_token_given_as_the_token_file(tmp_path: Path, hub: str) -> None:
    token = "hf_SecretTokenPutInThePathField"
    inventory = _inventory(tmp_path, hub_endpoint=hub, hub_token_file=token)
    code, output = _run("weights", "pull", "-i", str(inventory))
    assert code == 2, output
    assert "SecretToken" not in output and "Traceback" not in output
