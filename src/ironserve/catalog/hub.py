"""Add a model the catalog lacks: fetch its config.json from the hub (or a mirror)."""

from __future__ import annotations

import tempfile
from pathlib import Path


def fetch_config(
    model_id: str,
    dest: Path,
    *,
    revision: str = "main",
    endpoint: str | None = None,
    token_file: Path | None = None,
) -> Path:
    """Download ``config.json`` of ``model_id`` to ``dest`` with the real huggingface_hub client.

    The token is read from a file so it never appears on a command line or in output.
    """
    from huggingface_hub import hf_hub_download

    token = token_file.read_text().strip() if token_file else False
    with tempfile.TemporaryDirectory() as scratch:
        downloaded = hf_hub_download(
            model_id,
            "config.json",
            revision=revision,
            endpoint=endpoint,
            token=token,
            local_dir=scratch,
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(Path(downloaded).read_bytes())
    return dest
