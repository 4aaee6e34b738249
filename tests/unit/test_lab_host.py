"""The lab's host prerequisites: the apt mirror read from the machine's own sources, the doctor's
verdicts, and setup refusing (exit 2, nothing run) where it cannot install."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironserve.cli import app
from ironserve.lab import host

# /etc/apt/sources.list.d/debian.sources in the Debian 12 image's layout, with a site mirror (not a
# host the code could know), so the test proves the mirror is read from this file.
DEBIAN_SOURCES = """Types: deb
URIs: http://apt.site.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://apt.site.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def _apt(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_mirror_comes_from_the_deb822_sources(tmp_path: Path) -> None:
    apt = _apt(tmp_path, {"sources.list.d/debian.sources": DEBIAN_SOURCES})
    assert host.apt_mirror("bookworm", apt) == "http://apt.site.example/debian"


def test_mirror_from_one_line_sources_skips_security_and_disabled(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        {
            "sources.list": "# deb http://old.example/debian bookworm main\n"
            "deb http://security.debian.org/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://mirror.internal/debian/ trixie main\n",
            "sources.list.d/off.sources": "Types: deb\nURIs: http://off.example/debian\n"
            "Suites: bookworm\nEnabled: no\n",
        },
    )
    # No enabled source lists bookworm: the distro archive the machine uses serves it too.
    assert host.apt_mirror("bookworm", apt) == "http://mirror.internal/debian"


def test_no_apt_sources_means_no_mirror(tmp_path: Path) -> None:
    assert host.apt_mirror("bookworm", tmp_path) is None


def test_base_image_mirror_is_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    from ironserve.lab import images

    monkeypatch.setenv("IRONSERVE_LAB_MIRROR", "http://apt.site.internal/debian")
    with_override = images.base_tag()
    assert images.mirror() == "http://apt.site.internal/debian"
    monkeypatch.delenv("IRONSERVE_LAB_MIRROR")
    assert images.base_tag() != with_override  # the mirror is part of the base image's recipe


def test_capabilities_read_from_the_bounding_set(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t000001ffffffffff\n")
    assert host.capabilities_missing(status) == []
    without_sys_admin = 0x1FFFFFFFFFF & ~(1 << 21)
    status.write_text(f"CapBnd:\t{without_sys_admin:016x}\n")
    assert host.capabilities_missing(status) == ["CAP_SYS_ADMIN"]


def _no_commands(monkeypatch: pytest.MonkeyPatch, absent: set[str]) -> list[list[str]]:
    """Hide commands from the host checks; record any subprocess the code would run."""
    real = host.which
    monkeypatch.setattr(host, "which", lambda c: None if c in absent else real(c))
    ran: list[list[str]] = []

    def record(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        ran.append(list(argv))
        raise AssertionError(f"setup ran {argv}")

    monkeypatch.setattr(subprocess, "run", record)
    monkeypatch.setattr(subprocess, "Popen", record)
    return ran


def test_setup_as_non_root_says_what_to_install_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran = _no_commands(monkeypatch, {"debootstrap", "dockerd"})
    monkeypatch.setattr(host, "is_root", lambda: False)
    monkeypatch.setattr(host, "engine_client", lambda: None)
    result = CliRunner().invoke(app, ["lab", "setup"])
    assert result.exit_code == 2, result.output
    assert "need root" in result.output
    assert "apt-get install -y docker.io debootstrap" in result.output
    assert "dockerd --data-root" in result.output
    assert ran == []  # nothing was run, nothing changed


def test_setup_off_debian_exits_2_before_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = _no_commands(monkeypatch, {"debootstrap"})
    monkeypatch.setattr(host, "is_debian", lambda: False)
    result = CliRunner().invoke(app, ["lab", "setup"])
    assert result.exit_code == 2, result.output
    assert "not a Debian machine" in result.output and "debootstrap" in result.output
    assert ran == []


def test_setup_installs_only_whats_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "which", lambda c: None if c == "ruby" else f"/usr/bin/{c}")
    monkeypatch.setattr(host, "engine_client", lambda: object())
    assert [p.package for p in host.missing_packages(tests=False)] == []
    assert [p.package for p in host.missing_packages(tests=True)] == ["ruby"]
    packages, start, problems = host.plan_setup(tests=False)
    assert (packages, start, problems) == ([], False, [])


def test_doctor_names_each_missing_piece_with_a_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_commands(monkeypatch, {"debootstrap", "dockerd"})
    monkeypatch.setattr(host, "engine_client", lambda: None)
    result = CliRunner().invoke(app, ["lab", "doctor", "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    missing = {c["name"]: c for c in doc["checks"] if c["status"] == "missing"}
    assert {"package docker.io", "package debootstrap", "docker engine"} <= set(missing)
    assert all(c["remedy"] for c in missing.values())
    assert doc["ok"] is False


def test_doctor_refuses_a_lab_larger_than_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_available_memory_mib", lambda: 5000)
    monkeypatch.setattr(host, "engine_client", lambda: None)
    small = {c.name: c for c in host.doctor(nodes=1)}  # one node of the real vLLM: ~2.1 GiB
    large = {c.name: c for c in host.doctor(nodes=3)}  # make demo's three
    light = {c.name: c for c in host.doctor(nodes=48, light=True)}
    assert small["memory"].status == "ok" and light["memory"].status == "ok"
    assert large["memory"].status == "missing"
    assert "3 labgpu node(s) serving the real vLLM" in large["memory"].observed
