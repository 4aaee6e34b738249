"""The verified download's shell, run for real (bash, curl on file:// URLs, sha256sum, gpg): a
matching file lands in place with its mode; a tampered one is refused naming the artifact, and
neither it nor its partial copy is left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ironserve.operations.download import KeyFingerprint, verify_script

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("bash", "curl", "sha256sum", "gpg")),
    reason="needs bash, curl, sha256sum and gpg",
)
INSTALLER = b"#!/bin/sh\necho installed\n" + bytes(range(256)) * 64


def _run(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, check=False, timeout=60
    )


@pytest.fixture
def served(tmp_path: Path) -> Path:
    source = tmp_path / "repo" / "vastai_driver_install_3.3.0.run"
    source.parent.mkdir()
    source.write_bytes(INSTALLER)
    return source


def test_a_matching_installer_lands_with_its_mode(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / served.name
    sha = hashlib.sha256(INSTALLER).hexdigest()
    done = _run(verify_script(served.as_uri(), str(dest), served.name, sha256=sha, mode="0755"))
    assert done.returncode == 0, done.stderr
    assert dest.read_bytes() == INSTALLER and oct(dest.stat().st_mode & 0o777) == "0o755"
    assert not Path(f"{dest}.part").exists()


def test_one_byte_changed_is_refused_and_nothing_is_left(served: Path, tmp_path: Path) -> None:
    sha = hashlib.sha256(INSTALLER).hexdigest()
    tampered = bytearray(INSTALLER)
    tampered[100] ^= 0x01
    served.write_bytes(bytes(tampered))
    dest = tmp_path / "cache" / served.name
    done = _run(verify_script(served.as_uri(), str(dest), served.name, sha256=sha, mode="0755"))
    assert done.returncode == 1
    got = hashlib.sha256(bytes(tampered)).hexdigest()
    assert done.stderr.strip() == (
        f"{served.name}: refused, nothing installed: the sha256 of {served.as_uri()} is {got}, "
        f"expected {sha} (a tampered or wrong file)"
    )
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_an_unreachable_source_names_the_artifact(tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "x.run"
    missing = (tmp_path / "nothing.run").as_uri()
    done = _run(verify_script(missing, str(dest), "x.run", sha256="0" * 64))
    assert done.returncode == 1
    assert done.stderr.strip().endswith(f"x.run: could not download {missing}")
    assert not dest.exists()


def test_a_key_is_checked_by_its_fingerprint(tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "lab <lab@ironserve.invalid>",
         "ed25519", "sign", "never"],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    key = tmp_path / "repo.asc"
    exported = subprocess.run(
        ["gpg", "--batch", "--armor", "--export"], env=env, check=True, capture_output=True
    )
    key.write_bytes(exported.stdout)
    listed = subprocess.run(
        ["bash", "-c", KeyFingerprint().command(str(key))], env=env, capture_output=True, text=True
    )
    fingerprint = KeyFingerprint().process(listed.stdout.splitlines())
    assert fingerprint is not None and len(fingerprint) == 40
    dest = tmp_path / "keyrings" / "repo.asc"
    ok = _run(verify_script(key.as_uri(), str(dest), "the key", fingerprint=fingerprint), env)
    assert ok.returncode == 0, ok.stderr
    assert dest.read_bytes() == exported.stdout
    other = tmp_path / "keyrings" / "other.asc"
    refused = _run(verify_script(key.as_uri(), str(other), "the key", fingerprint="A" * 40), env)
    assert refused.returncode == 1 and f"is {fingerprint}, expected {'A' * 40}" in refused.stderr
    assert not other.exists()
