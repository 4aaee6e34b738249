"""daemon.json and docker-info runtime parsers."""

from __future__ import annotations

import pytest
from pyinfra.api.exceptions import FactProcessError

from ironserve.facts.docker import (
    DaemonJsonError,
    DockerDaemonJson,
    DockerRuntimes,
    parse_daemon_json,
    parse_docker_runtimes,
)
from tests.facts.conftest import lines


def _without_prompt(name: str) -> list[str]:
    """The author's ``$ cat ...`` line is not part of the file."""
    return [line for line in lines(name) if not line.startswith("$ ")]


def test_daemon_json_nvidia_ctk_plain() -> None:
    data = DockerDaemonJson().process(lines("daemon.json.plain.json"))
    assert data == {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}


def test_daemon_json_default_runtime_with_trailing_blank_line() -> None:
    data = DockerDaemonJson().process(lines("daemon.json.default-runtime.json"))
    assert data["default-runtime"] == "nvidia"
    assert data["insecure-registries"] == ["blabla"]
    assert data["runtimes"]["nvidia"]["path"] == "/usr/bin/nvidia-container-runtime"


def test_daemon_json_legacy_and_ascend_forms() -> None:
    legacy = DockerDaemonJson().process(_without_prompt("daemon.json.legacy-runtimeargs.txt"))
    assert legacy["data-root"] == "/your/custom/location"
    assert legacy["runtimes"]["nvidia"]["runtimeArgs"] == []
    ascend = DockerDaemonJson().process(_without_prompt("daemon.json.ascend.txt"))
    assert ascend["default-runtime"] == "ascend"
    assert ascend["default-shm-size"] == "8G"
    assert ascend["runtimes"]["ascend"]["path"].endswith("/ascend-docker-runtime")


def test_daemon_json_parse_error_names_line_and_column() -> None:
    # The verbatim sample *with* the author's prompt line is exactly a broken file.
    with pytest.raises(
        FactProcessError, match=r"daemon.json is not valid JSON: .* line 1 column 1"
    ):
        DockerDaemonJson().process(lines("daemon.json.ascend.txt"))
    with pytest.raises(DaemonJsonError, match="line 3 column 1"):
        parse_daemon_json('{\n  "a": 1,\n}\n')
    with pytest.raises(DaemonJsonError, match="must hold a JSON object, found list"):
        parse_daemon_json("[]")


def test_daemon_json_empty_is_empty_dict() -> None:
    assert parse_daemon_json("  \n") == {}


def test_runtimes_json_capture() -> None:
    info = DockerRuntimes().process(lines("docker-info-runtimes-json.docker20.10.txt"))
    assert info["error"] is None
    assert info["default_runtime"] == "runc"
    assert sorted(info["runtimes"]) == [
        "io.containerd.runc.v2",
        "io.containerd.runtime.v1.linux",
        "runc",
    ]
    assert info["runtimes"]["runc"] == {"path": "runc", "args": []}


def test_runtimes_json_with_nvidia_and_args() -> None:
    output = [
        '{"nvidia":{"path":"nvidia-container-runtime","runtimeArgs":["--debug"]},"runc":{"path":"runc"}}',
        "nvidia",
    ]
    info = parse_docker_runtimes(output)
    assert info["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": ["--debug"]}
    assert info["default_runtime"] == "nvidia"


def test_runtimes_from_docker_info_text() -> None:
    info = parse_docker_runtimes(lines("docker-info.nvidia-runtime.txt"))
    assert sorted(info["runtimes"]) == ["io.containerd.runc.v2", "nvidia", "runc"]
    assert info["default_runtime"] == "runc"


@pytest.mark.parametrize(
    "fixture",
    ["docker-info-grep-runtime.missing-nvidia.txt", "docker-info-grep-run.no-nvidia.txt"],
)
def test_runtimes_missing_nvidia(fixture: str) -> None:
    info = parse_docker_runtimes(lines(fixture))
    assert "nvidia" not in info["runtimes"]
    assert sorted(info["runtimes"]) == ["io.containerd.runc.v2", "runc"]
    assert info["default_runtime"] == "runc"


def test_runtimes_daemon_down_is_an_error() -> None:
    message = (
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?"
    )
    info = parse_docker_runtimes([message])
    assert info == {"runtimes": {}, "default_runtime": None, "error": message}
