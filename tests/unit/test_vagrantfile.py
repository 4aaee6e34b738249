"""The Vagrantfile (the lab as real VMs) is valid Ruby: `ruby -c` is what Vagrant parses first."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def test_vagrantfile_parses(root: Path) -> None:
    ruby = shutil.which("ruby")
    assert ruby, "ruby is missing: `ironserve lab setup --tests` (make test) installs it"
    run = subprocess.run(
        [ruby, "-c", str(root / "Vagrantfile")], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0 and "Syntax OK" in run.stdout, run.stderr
