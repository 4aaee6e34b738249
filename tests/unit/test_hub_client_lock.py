"""The hub client's lock (ironserve.weights.client_lock): its format, its closure checked by pip's
own resolver against the wheels the lab downloads by it, and pip refusing a tampered wheel.

The wheels come from the lab's helper (``lab.images.hub_wheels``: pip download, by the lock's
hashes, into a folder kept under /tmp), run once per session outside the tests' own commands,
which then never leave this machine (``--no-index``)."""

from __future__ import annotations

import importlib.util
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ironserve.lab import images
from ironserve.weights import client_lock
from ironserve.weights.client_lock import LAB_NODE_ENV, LockError, Pin

ROOT = Path(__file__).resolve().parents[2]
LOCK_TEXT, PINS = client_lock.read()
HERE = dict(default_environment())
ON_A_LAB_NODES_PYTHON = (
    HERE["python_version"] == LAB_NODE_ENV["python_version"]
    and platform.machine() == LAB_NODE_ENV["platform_machine"]
    and sys.platform == "linux"
)
needs_lab_python = pytest.mark.skipif(
    not ON_A_LAB_NODES_PYTHON, reason="the lab's wheels are for CPython 3.11 on x86_64 Linux"
)


@pytest.fixture(scope="module")
def wheels() -> Path:
    try:
        return images.hub_wheels(LOCK_TEXT)
    except subprocess.CalledProcessError as error:  # no index reachable: nothing to check with
        pytest.skip(f"pip could not download the locked wheels: {error}")


def _pip(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    """pip with no configuration of this machine (its index, find-links, constraints)."""
    return subprocess.run(
        [python, "-m", "pip", "--isolated", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_package_is_pinned_with_the_sha256_of_its_files() -> None:
    assert len(PINS) >= 20
    for pin in PINS:
        assert pin.hashes and all(len(h) == 64 for h in pin.hashes), pin.name
        assert len(set(pin.hashes)) == len(pin.hashes)
    # A wheel for each platform and Python plus the sdist: a compiled package has many.
    assert len(next(p for p in PINS if p.name == "cryptography").hashes) > 10
    tops = [
        Requirement(line)
        for line in client_lock.packaged("hub-client.in").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for top in tops:
        (spec,) = top.specifier
        assert [p.version for p in PINS if p.name == canonicalize_name(top.name)] == [spec.version]


def test_each_node_python_gets_one_version_of_each_package() -> None:
    """Ubuntu 22.04 (3.10) gets tomli and exceptiongroup and older versions of what dropped 3.10;
    every target gets hf-xet on x86_64 and aarch64 alike, none gets Windows' colorama."""
    envs = {
        (py, machine): {
            **LAB_NODE_ENV,
            "python_version": py,
            "python_full_version": f"{py}.4",
            "platform_machine": machine,
        }
        for py in ("3.10", "3.11", "3.12")
        for machine in ("x86_64", "aarch64")
    }
    chosen = {key: client_lock.pins_for(PINS, env) for key, env in envs.items()}
    assert "tomli" in chosen["3.10", "aarch64"] and "tomli" not in chosen["3.11", "x86_64"]
    assert chosen["3.10", "x86_64"]["filelock"] != chosen["3.12", "x86_64"]["filelock"]
    assert all("hf-xet" in c and "colorama" not in c for c in chosen.values())
    assert all({"huggingface-hub", "modelscope"} <= set(c) for c in chosen.values())


@pytest.mark.parametrize(
    "text",
    [
        "requests>=2 --hash=sha256:" + "0" * 64,  # not pinned
        "requests==2.*  --hash=sha256:" + "0" * 64,
        "requests==2.34.2",  # no hash
        "requests==2.34.2 --hash=md5:0",
        "requests==2.34.2 --hash=sha256:" + "0" * 64 + " --index-url http://x",
        "# nothing but comments\n",
    ],
)
def test_a_lock_pip_would_not_take_by_hash_is_refused(text: str) -> None:
    with pytest.raises(LockError):
        client_lock.parse(text)


def test_outdated_names_what_differs_from_the_pins_of_the_nodes_python() -> None:
    pins = [
        Pin("filelock", "4.1.0", 'python_version < "3.11"', ("0" * 64,)),
        Pin("filelock", "4.3.2", 'python_version >= "3.11"', ("1" * 64,)),
        Pin("pyyaml", "6.0.4", None, ("2" * 64,)),
    ]
    on_311 = {**LAB_NODE_ENV}
    on_310 = {**LAB_NODE_ENV, "python_version": "3.10", "python_full_version": "3.10.12"}
    venv = {"filelock": "4.3.2", "PyYAML": "6.0.4"}
    assert client_lock.outdated(pins, on_311, venv) == []
    assert client_lock.outdated(pins, on_310, venv) == ["filelock==4.1.0"]
    assert client_lock.outdated(pins, on_311, {"filelock": "4.3.2"}) == ["pyyaml==6.0.4"]


def test_the_lab_node_image_is_named_by_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """One source of the pins: another lock is another node image."""
    before = images.node_tag("base:1")
    monkeypatch.setattr(client_lock, "packaged", lambda name="": LOCK_TEXT + "# another\n")
    assert images.node_tag("base:1") != before


@needs_lab_python
def test_the_lock_is_the_closure_pips_resolver_finds(wheels: Path, tmp_path: Path) -> None:
    """pip resolves the top-level requirements from the downloaded wheels alone (no index): it
    needs exactly the packages and versions the lock pins for this Python."""
    top = tmp_path / "hub-client.in"
    top.write_text(client_lock.packaged("hub-client.in"))
    done = _pip(
        *("install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-"),
        *("--no-index", "--find-links", str(wheels), "-r", str(top)),
    )
    assert done.returncode == 0, done.stderr
    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(done.stdout)["install"]
    }
    assert resolved == client_lock.pins_for(PINS, HERE)


@needs_lab_python
def test_pip_refuses_a_tampered_wheel_and_installs_the_true_ones(
    wheels: Path, tmp_path: Path
) -> None:
    """The node's command (--require-hashes --no-deps -r lock) in a fresh venv: one flipped byte
    in one wheel and pip installs nothing; the downloaded wheels install."""
    tampered = tmp_path / "wheels"
    shutil.copytree(wheels, tampered)
    wheel = next(tampered.glob("huggingface_hub-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    lock = tmp_path / "hub-client.txt"
    lock.write_text(LOCK_TEXT)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    install = ("install", "--require-hashes", "--no-deps", "--no-index", "-r", str(lock))

    refused = _pip(*install, "--find-links", str(tampered), python=python)
    assert refused.returncode != 0
    assert "DO NOT MATCH THE HASHES" in refused.stderr and "huggingface" in refused.stderr
    nothing = _pip("list", "--format=json", python=python)
    assert "modelscope" not in nothing.stdout  # checked before anything was installed

    done = _pip(*install, "--find-links", str(wheels), python=python)
    assert done.returncode == 0, done.stderr
    listed = json.loads(_pip("list", "--format=json", python=python).stdout)
    have = {canonicalize_name(p["name"]): p["version"] for p in listed}
    assert client_lock.outdated(PINS, HERE, have) == []


def test_the_lock_tool_takes_only_the_files_of_the_pinned_project() -> None:
    """tools/lock_hub_client.py reads the index's file list of a project: every wheel and the
    sdist of the version, nothing of another project whose name shares a prefix."""
    spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools/lock_hub_client.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool._version_of("cffi-2.1.1-cp311-cp311-manylinux2014_aarch64.whl", "cffi") == "2.1.1"
    assert tool._version_of("cffi-2.1.1.tar.gz", "cffi") == "2.1.1"
    assert tool._version_of("httpx2_jsfetch-1.0-py3-none-any.whl", "httpx2") is None
    assert tool._version_of("cffi-2.1.1.exe", "cffi") is None
