"""facts/engine.py: a serving container from `docker inspect --format INSPECT_FORMAT` (captured from
Docker 20.10, the lab nodes' docker.io, on a labelled container), the serve probe and `ray
status` sections; a missing container, a node without Docker, and the image and listing facts."""

from __future__ import annotations

from pathlib import Path

from ironserve.facts.engine import (
    DockerImagePresent,
    EngineContainer,
    IronserveContainers,
    container_command,
    parse_container,
)

CAPTURE = Path(__file__).parent / "fixtures" / "docker-inspect-format.engine-container.txt"
RAY = Path(__file__).resolve().parents[1] / "fixtures" / "ray" / "lab-ray2.60-verbose.txt"


def test_a_running_labelled_container_with_its_serve_process_and_ray() -> None:
    lines = ["@@inspect", *CAPTURE.read_text().splitlines(), "@@serve", "9c1e0f", "@@ray"]
    lines += RAY.read_text().splitlines()
    doc = parse_container(lines)
    assert doc["exists"] and doc["running"] and doc["status"] == "running"
    assert (doc["spec"], doc["group"], doc["restart_count"]) == ("abc123", "g", 0)
    assert doc["started_at"] == "2026-11-24T06:12:05.064678553Z"
    assert doc["serve_spec"] == "9c1e0f"
    assert doc["ray_status"].startswith("======== Autoscaler status")


def test_a_missing_container_and_a_node_without_docker() -> None:
    missing = parse_container(["@@inspect", "{}", "@@serve", "@@ray"])
    assert missing["docker"] and not missing["exists"] and missing["serve_spec"] is None
    assert missing["ray_status"] == ""
    bare = EngineContainer.default()
    assert not bare["docker"] and not bare["exists"]
    assert parse_container(["@@no-docker"]) == bare


def test_the_fact_commands_never_dump_the_containers_env() -> None:
    command = container_command("ironserve-g-ray", serve=True, ray=True)
    assert "--format" in command and ".Config.Env" not in command
    assert command.endswith("; true")  # a node without the container still answers
    assert "docker exec ironserve-g-ray ray status" in command
    assert DockerImagePresent().process(["sha256:" + "1" * 64]) is True
    assert DockerImagePresent().process([]) is False
    listing = IronserveContainers().command("g", ("ironserve-g-ray",))
    assert "label=ironserve.group=g" in listing and "'name=^/?ironserve-g-ray$'" in listing
    assert IronserveContainers().process(["b", "a", "b", ""]) == ["a", "b"]
