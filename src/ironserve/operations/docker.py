"""``/etc/docker/daemon.json``: merged, never clobbered, and the NVIDIA runtime configured only
when it is missing (DeepOps' check-then-change around ``nvidia-ctk runtime configure``).

.. code:: python

    merged = docker.daemon_json(name="Merge daemon.json", settings={"log-driver": "json-file"})
    ctk = docker.nvidia_runtime(name="Register the NVIDIA runtime")
    systemd.service(name="Restart Docker", service="docker", restarted=True,
                    _if=any_changed(merged, ctk))
"""

from __future__ import annotations

import copy
import io
import json
import posixpath
import shlex
from collections.abc import Generator
from typing import Any

from pyinfra.api.command import FileUploadCommand, StringCommand
from pyinfra.api.operation import operation
from pyinfra.context import host

from ironserve.facts.docker import DAEMON_JSON, DockerDaemonJson


def merge_daemon_config(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``wanted`` merged in: objects merge key by key, lists gain the missing
    items (in order), other values are replaced. Keys only ``current`` has are kept."""
    merged = copy.deepcopy(current)
    for key, value in wanted.items():
        have = merged.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            merged[key] = merge_daemon_config(have, value)
        elif isinstance(value, list) and isinstance(have, list):
            merged[key] = have + [item for item in value if item not in have]
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def render_daemon_json(config: dict[str, Any]) -> str:
    """The file's text: 4-space indent and sorted keys, as ``nvidia-ctk`` writes it."""
    return json.dumps(config, indent=4, sort_keys=True) + "\n"


def nvidia_runtime_configured(config: dict[str, Any], set_as_default: bool = True) -> bool:
    """Whether daemon.json registers the ``nvidia`` runtime (with a path) and, when asked, makes
    it the default: the check DeepOps runs before ``nvidia-ctk runtime configure``."""
    runtimes = config.get("runtimes")
    nvidia = runtimes.get("nvidia") if isinstance(runtimes, dict) else None
    registered = isinstance(nvidia, dict) and bool(nvidia.get("path"))
    return registered and (not set_as_default or config.get("default-runtime") == "nvidia")


@operation()
def daemon_json(
    settings: dict[str, Any], path: str = DAEMON_JSON
) -> Generator[str | StringCommand | FileUploadCommand, None, None]:
    """Merge ``settings`` into daemon.json (see :func:`merge_daemon_config`); write it only when
    the merged configuration differs from what is there. A file that is not JSON fails the
    DockerDaemonJson fact: nothing overwrites it.

    + settings: the keys to set (objects and lists merge into what is there)
    + path: the daemon.json to edit
    """
    current: dict[str, Any] = host.get_fact(DockerDaemonJson, path=path)
    merged = merge_daemon_config(current, dict(settings))
    if merged == current:
        host.noop(f"{path} already holds the settings")
        return
    yield StringCommand("mkdir", "-p", shlex.quote(posixpath.dirname(path)))
    yield FileUploadCommand(io.StringIO(render_daemon_json(merged)), path)
    yield StringCommand("chmod", "644", shlex.quote(path))


@operation()
def nvidia_runtime(
    path: str = DAEMON_JSON, set_as_default: bool = True
) -> Generator[str | StringCommand, None, None]:
    """Run ``nvidia-ctk runtime configure --runtime=docker [--set-as-default]`` only when
    daemon.json lacks the nvidia runtime (or, with ``set_as_default``, the default runtime).

    + path: the daemon.json nvidia-ctk edits
    + set_as_default: make ``nvidia`` Docker's default runtime
    """
    config: dict[str, Any] = host.get_fact(DockerDaemonJson, path=path)
    if nvidia_runtime_configured(config, set_as_default):
        host.noop("the nvidia runtime is configured")
        return
    args = ["nvidia-ctk", "runtime", "configure", "--runtime=docker"]
    if path != DAEMON_JSON:
        args.append("--config=" + shlex.quote(path))
    if set_as_default:
        args.append("--set-as-default")
    yield StringCommand(*args)
