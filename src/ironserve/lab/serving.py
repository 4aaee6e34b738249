"""The lab's endpoint: its API key file and its OpenAI base URL, for `lab status --json`.

The key is made by `lab up` (``<lab dir>/api_key``, 0600, the key alone on one line, as
``serving_api_key_file`` expects) and inventories/lab.py names it as the group's
``serving_api_key_file``, so deploys/serve.py turns it on and clients read it from there. The
endpoint and the key's file are the Plan's (``Plan.endpoint``, ``Plan.api_key``), computed from
inventories/lab.py exactly as a deploy computes them.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ironserve.lab import state as st
from ironserve.serving.apikey import write_new_key

if TYPE_CHECKING:
    from ironserve.plan.plan import Plan

API_KEY_FILE = "api_key"


def api_key_path(directory: Path) -> Path:
    return directory / API_KEY_FILE


def ensure_api_key(directory: Path) -> Path:
    """``<lab dir>/api_key`` (0600), made once per lab; a new lab gets a new key."""
    path = api_key_path(directory)
    if not path.exists():
        write_new_key(path)
    return path


def lab_inventory(directory: Path | None = None) -> Path:
    """The inventory that deploys the lab in ``directory``: inventories/lab_dynamo.py for a lab
    serving NVIDIA Dynamo (`lab up --dynamo`), else inventories/lab.py."""
    state = st.load(directory)
    name = "lab_dynamo.py" if state is not None and state.dynamo else "lab.py"
    return st.project_root() / "inventories" / name


@contextlib.contextmanager
def _lab_dir_env(directory: Path) -> Iterator[None]:
    old = os.environ.get("IRONSERVE_LAB_DIR")
    os.environ["IRONSERVE_LAB_DIR"] = str(directory)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("IRONSERVE_LAB_DIR", None)
        else:
            os.environ["IRONSERVE_LAB_DIR"] = old


def lab_plan(directory: Path) -> Plan | None:
    """The Plan of the lab's (first) serving group; None when the lab's inventory does not plan
    (say, a profile whose engine has no image)."""
    from ironserve.config.loader import load_cluster
    from ironserve.errors import InputError
    from ironserve.plan.plan import plan_group

    inventory = lab_inventory(directory)
    if not inventory.is_file():
        return None
    with warnings.catch_warnings():
        # pyinfra's CLI package patches the process with gevent on import (as for every
        # `ironserve validate`); here ssl is already imported, so gevent warns about it.
        warnings.filterwarnings("ignore", message="Monkey-patching ssl")
        import pyinfra_cli  # noqa: F401
    try:
        with _lab_dir_env(directory):
            cluster = load_cluster(str(inventory), cwd=str(st.project_root()))
        return plan_group(cluster.groups[0])
    except (InputError, ValueError):
        return None


def endpoint(directory: Path) -> str | None:
    """The Plan's OpenAI base URL of the lab's (first) serving group, or None."""
    plan = lab_plan(directory)
    return plan.endpoint.url if plan is not None else None


def status(directory: Path) -> dict[str, str | None]:
    """``endpoint`` and ``api_key_file`` for `lab status --json`, both from the Plan of the
    lab's ``inventory`` (a Dynamo lab's endpoint: the gateway in front of its frontend)."""
    inventory = str(lab_inventory(directory))
    plan = lab_plan(directory)
    if plan is None:
        return {"endpoint": None, "api_key_file": None, "inventory": inventory}
    key = plan.api_key.control_path
    return {
        "endpoint": plan.endpoint.url,
        "api_key_file": str(key) if key.is_file() else None,
        "inventory": inventory,
    }


class ChatError(RuntimeError):
    """The lab's endpoint did not answer (not deployed yet, or refused)."""


def chat(directory: Path, prompt: str, max_tokens: int = 16) -> tuple[str, str, str, str]:
    """(endpoint, key file, model, answer): one chat completion from the lab's endpoint with
    its key."""
    import httpx

    from ironserve.serving.apikey import ApiKeyError, read_plan_key

    plan = lab_plan(directory)
    if plan is None:
        raise ChatError(f"the lab in {directory} has no endpoint (is a lab up?)")
    url = plan.endpoint.url
    try:
        headers = {"Authorization": f"Bearer {read_plan_key(plan.api_key)}"}
    except ApiKeyError as error:
        raise ChatError(f"the lab in {directory} has no API key: {error}") from error
    try:
        models = httpx.get(f"{url}/models", headers=headers, timeout=10)
        models.raise_for_status()
        model = str(models.json()["data"][0]["id"])
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
        }
        answer = httpx.post(f"{url}/chat/completions", json=body, headers=headers, timeout=120)
        answer.raise_for_status()
    except httpx.HTTPError as error:
        raise ChatError(
            f"{url}: {error} (deploy first: pyinfra -y "
            f"{lab_inventory(directory).relative_to(st.project_root())} deploys/site.py)"
        ) from error
    text = str(answer.json()["choices"][0]["message"].get("content") or "")
    return url, plan.api_key.control_file, model, text
