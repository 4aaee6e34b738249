"""operations/secrets.py's node-side script, run for real with sh: the secret arrives on stdin,
lands 0600 in a 0700 folder (an existing folder open to others is closed first), replaces an
older file atomically and leaves no temporary file behind."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from ironserve.operations.secrets import write_command

SECRET = "VLLM_API_KEY=sk-secret-file-test\n"


def write(path: Path, content: str) -> subprocess.CompletedProcess[str]:
    command = write_command(str(path), content)
    return subprocess.run(
        command.get_raw_value(),
        shell=True,
        input=command.connector_arguments["_stdin"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_secret_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "group" / "secrets.env"
    result = write(path, SECRET)
    assert result.returncode == 0, result.stderr
    assert path.read_text() == SECRET
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert SECRET.strip() not in write_command(str(path), SECRET).get_raw_value()


def test_open_folder_closed_and_old_file_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "group"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    old = folder / "secrets.env"
    old.write_text("VLLM_API_KEY=old\n")
    old.chmod(0o644)
    result = write(old, SECRET)
    assert result.returncode == 0, result.stderr
    assert old.read_text() == SECRET and mode(old) == 0o600 and mode(folder) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["secrets.env"]  # no temporary left
