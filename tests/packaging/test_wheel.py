"""The built wheel works outside the checkout: it carries the templates, runbooks, roles and
catalog data, and, installed into a fresh venv and run from another folder, `ironserve plan`,
`render`, `runbook`, `monitoring render` and `weights pull` (the packaged deploy file, on a
``@fake`` node) work and the golden tests of every template pass against the installed package.

The wheel is built by pip as a user would (build isolation: setuptools from the configured
index); the fresh venv sees this venv's third-party packages through a .pth line (so nothing is
downloaded for them) but not the checkout: an editable install's own .pth is not processed there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "ironserve"
SITE = "h100x8_2node_r1_vllm"
GOLDEN = ROOT / "tests" / "golden" / "monitoring"
# The golden tests that render every template of the package (base, nvidia, container_runtime;
# monitoring; ascend's hccn.conf), run against the installed package.
TEMPLATE_GOLDENS = (
    "tests/golden/test_golden_roles.py",
    "tests/golden/test_golden_monitoring.py",
    "tests/deploys/test_ascend.py::test_hccn_conf_golden",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    work: Path  # a folder outside the checkout, holding a copy of the example site

    @property
    def package(self) -> Path:
        """Where the wheel put ironserve inside the venv."""
        (init,) = self.venv.glob("lib/python*/site-packages/ironserve/__init__.py")
        return init.parent

    @property
    def inventory(self) -> str:
        return str(self.work / "site" / f"{SITE}.py")

    def env(self) -> dict[str, str]:
        env = _outside_env()
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            cwd=cwd or self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def ironserve(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "ironserve"), *args)


def _outside_env() -> dict[str, str]:
    """This environment without whatever puts the checkout's src/ on the path."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


def _outside(argv: list[str], what: str, timeout: int = 300) -> str:
    """Run ``argv`` outside the checkout's path; its stdout, once it exited 0."""
    proc = subprocess.run(
        argv, env=_outside_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    _check(proc, what)
    return proc.stdout


def _build_wheel(work: Path) -> Path:
    """pip wheel from a copy of the project's sources (the build writes beside them)."""
    source = work / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", source / "src", ignore=skip)
    dist = work / "dist"
    _outside(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        "pip wheel",
        timeout=600,
    )
    (wheel,) = dist.glob("ironserve-*.whl")
    return wheel


def _fresh_venv(folder: Path, wheel: Path) -> Path:
    """A venv without pip holding the wheel alone, then given this venv's site-packages (the
    third-party packages) at the end of its path."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = str(folder / "bin" / "python")
    # Installed before the shared folder is visible: pip sees an empty venv and installs.
    pip = [sys.executable, "-m", "pip", "--python", python]
    _outside([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)], "pip install")
    purelib = _outside(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], "purelib"
    ).strip()
    shared = sysconfig.get_paths()["purelib"]
    # A plain path line: the shared folder's own .pth files (the editable install) stay unread.
    Path(purelib, "zz_shared_site_packages.pth").write_text(shared + "\n")
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(work)
    fresh = _fresh_venv(work / "venv", wheel)
    site = work / "site"
    (site / "group_data").mkdir(parents=True)
    shutil.copy(ROOT / "inventories" / f"{SITE}.py", site)
    shutil.copy(ROOT / "inventories" / "group_data" / f"{SITE}.py", site / "group_data")
    yield Installed(wheel, fresh, work)


def test_the_wheel_carries_the_package_data(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    wanted = {
        f"ironserve/{p.relative_to(PACKAGE).as_posix()}"
        for pattern in ("templates/**/*.j2", "runbooks/data/*.md", "catalog/data/**/*.json")
        for p in PACKAGE.glob(pattern)
    }
    assert any(n.startswith("ironserve/templates/monitoring/") for n in wanted)
    assert "ironserve/runbooks/data/gpu-xid.md" in wanted
    assert wanted <= names, sorted(wanted - names)
    roles = {f"ironserve/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.glob("roles/*/*.py")}
    assert "ironserve/roles/base/defaults.py" in roles
    assert roles <= names, sorted(roles - names)
    assert "ironserve/deploys/weights.py" in names  # the deploy `ironserve weights pull` runs


def test_the_installed_package_is_the_wheels(installed: Installed) -> None:
    proc = installed.run(
        str(installed.venv / "bin" / "python"),
        "-c",
        "import ironserve, ironserve.roles; print(ironserve.__file__); "
        "print(ironserve.roles.__file__)",
    )
    _check(proc, "import ironserve")
    for line in proc.stdout.split():
        path = Path(line).resolve()
        assert path.is_relative_to(installed.venv.resolve()), path
        assert not path.is_relative_to(ROOT), path


def test_plan_render_runbook_and_monitoring_outside_the_checkout(installed: Installed) -> None:
    inventory = installed.inventory
    plan = installed.ironserve("plan", "-i", inventory, "--json")
    _check(plan, "ironserve plan")
    assert json.loads(plan.stdout)["feasible"] is True

    render = installed.ironserve("render", "-i", inventory, "--node", "h100-b", "--json")
    _check(render, "ironserve render")
    assert json.loads(render.stdout)["node"] == "h100-b"

    runbook = installed.ironserve("runbook", "-i", inventory, "gpu-xid", "--node", "h100-b")
    _check(runbook, "ironserve runbook")
    assert "h100-b" in runbook.stdout and "{node}" not in runbook.stdout

    out = installed.work / "monitoring"
    monitoring = installed.ironserve("monitoring", "render", "-i", inventory, "--out", str(out))
    _check(monitoring, "ironserve monitoring render")
    assert (out / "prometheus.yml").read_text() == (
        GOLDEN / "prometheus.yml.h100x8-2node"
    ).read_text()
    assert (out / "alerts.yml").read_text() == (GOLDEN / "alerts.yml.h100x8-2node").read_text()
    assert json.loads((out / "grafana-dashboard.json").read_text())["panels"]


def _node_inventory(folder: Path, hub_url: str) -> Path:
    """One ``@fake`` node (no SSH) holding none of the weights, its hub the lab hub."""
    state = {
        "manifest": None,
        "stat": {},
        "staging_bytes": 0,
        "client": True,
        "free_path": "/weights",
        "free_bytes": 20 << 30,
        "host_key": "ssh-ed25519 AAAAhostkey",
    }
    data = {
        "node_role": "head",
        "node_ip": "10.9.0.1",
        "accelerator_kind": "h100-80g",
        "accelerator_count": 8,
        "model_id": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        "model_weights_dir": "/weights",
        "hub_endpoint": hub_url,
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "fake_responses": {"statvfs": json.dumps(state)},  # the WeightsState fact's probe
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake_node.py"
    path.write_text(f"nodes = [({'@fake/n1'!r}, {data!r})]\n")
    return path


def test_weights_pull_runs_the_packaged_deploy_outside_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    """No deploys/weights.py anywhere near: `ironserve weights pull` runs the package's own."""
    from ironserve.lab.hub import repos as hub_repos
    from ironserve.lab.hub.server import Hub, serve_in_thread

    hub = Hub(tmp_path / "hub", PACKAGE / "catalog" / "data" / "models")
    for spec in hub_repos.default_specs("hf_token"):
        hub.add_repo(spec)
    server = serve_in_thread(hub)
    try:
        inventory = _node_inventory(
            installed.work / "fake-site", f"http://127.0.0.1:{server.server_address[1]}"
        )
        # Where the CLI looked before: the inventory's project folder and the working folder.
        assert inventory.parent.parent == installed.work
        assert not (installed.work / "deploys").exists()
        pull = installed.ironserve("weights", "pull", "--dry", "-i", str(inventory))
    finally:
        server.shutdown()
        server.server_close()
    _check(pull, "ironserve weights pull --dry")
    planned = pull.stdout.rsplit("weights: dry run, ", 1)[1].split()[0]
    assert int(planned) > 0, pull.stdout


def test_every_template_renders_from_the_installed_package(installed: Installed) -> None:
    """The golden tests of the templates, run with ironserve imported from the fresh venv, load
    every template the package ships, each from the venv."""
    script = (
        "import json, sys, jinja2, ironserve, pytest\n"
        "seen = set()\n"
        "load = jinja2.Environment.get_template\n"
        "def get_template(self, *args, **kwargs):\n"
        "    template = load(self, *args, **kwargs)\n"
        "    seen.add(template.filename)\n"
        "    return template\n"
        "jinja2.Environment.get_template = get_template\n"
        "code = pytest.main(sys.argv[1:])\n"
        "print('LOADED ' + json.dumps(sorted(seen)))\n"
        "sys.exit(code)\n"
    )
    proc = installed.run(
        str(installed.venv / "bin" / "python"),
        "-c",
        script,
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(ROOT),
        *(str(ROOT / target) for target in TEMPLATE_GOLDENS),
    )
    _check(proc, "the template goldens against the installed package")
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout
    loaded = [Path(f) for f in json.loads(proc.stdout.split("LOADED ", 1)[1].splitlines()[0])]
    templates = installed.package / "templates"
    assert all(f.is_relative_to(templates) for f in loaded), loaded
    shipped = {p.relative_to(PACKAGE / "templates") for p in PACKAGE.glob("templates/**/*.j2")}
    assert {f.relative_to(templates) for f in loaded} == shipped
