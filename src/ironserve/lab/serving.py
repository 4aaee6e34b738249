"""The lab's endpoint: its API key file and its OpenAI base URL, for `lab status --json`.

The key is made by `lab up` (``<lab dir>/api_key``, 0600, the key alone on one line, as
``serving_api_key_file`` expects) and inventories/lab.py names it as the group's
``serving_api_key_file``, so deploys/serve.py turns it on and clients read it from there. The
endpoint is the Plan's: the serving node's address and the planned port, computed from
inventories/lab.py exactly as a deploy computes it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from ironserve.lab import state as st
from ironserve.serving.apikey import write_new_key

API_KEY_FILE = "api_key"


def api_key_path(directory: Path) -> Path:
    return directory / API_KEY_FILE


def ensure_api_key(directory: Path) -> Path:
    """``<lab dir>/api_key`` (0600), made once per lab; a new lab gets a new key."""
    path = api_key_path(directory)
    if not path.exists():
        write_new_key(path)
    return path


def lab_inventory() -> Path:
    return st.project_root() / "inventories" / "lab.py"


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


def endpoint(directory: Path) -> str | None:
    """``http://<serving node>:<port>/v1`` of the lab's (first) serving group, from its Plan;
    None when the lab's inventory does not plan (say, a profile whose engine has no image)."""
    from ironserve.config.loader import load_cluster
    from ironserve.errors import InputError
    from ironserve.plan.plan import plan_group

    inventory = lab_inventory()
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
        plan = plan_group(cluster.groups[0])
    except (InputError, ValueError):
        return None
    head = next(n for n in plan.nodes if n.serves_api)
    return f"http://{head.address}:{plan.context.port}/v1"


class ChatError(RuntimeError):
    """The lab's endpoint did not answer (not deployed yet, or refused)."""


def chat(directory: Path, prompt: str, max_tokens: int = 16) -> tuple[str, str, str]:
    """(endpoint, model, answer): one chat completion from the lab's endpoint with its key."""
    import httpx

    from ironserve.serving.apikey import read_key

    url = endpoint(directory)
    key_file = api_key_path(directory)
    if url is None or not key_file.is_file():
        raise ChatError(f"the lab in {directory} has no endpoint (is a lab up?)")
    headers = {"Authorization": f"Bearer {read_key(key_file)}"}
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
            f"{url}: {error} (deploy first: pyinfra -y inventories/lab.py deploys/site.py)"
        ) from error
    text = str(answer.json()["choices"][0]["message"].get("content") or "")
    return url, model, text
