"""The lab's gateway image: Debian bookworm's nginx on the lab base image.

roles/gateway runs nginx's own image (``gateway_image``) on real nodes; the lab reaches no public
registry, so it builds nginx from the lab's Debian mirror, pushes it to the lab registry as
``ironserve-lab/nginx:v<version>`` and the lab inventory names that as ``gateway_image``. The
gateway's configuration and container are the ones ironserve renders for any nginx image.
Cached by a content hash like the other lab images.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ironserve.lab import engine_image as ei
from ironserve.lab import images as img

VERSION = "1.22.1"  # bookworm's nginx
REPO = "ironserve-lab-gateway"
REFERENCE_REPOSITORY = "ironserve-lab/nginx"

SCRIPT = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -o Acquire::Check-Valid-Until=false update -qq
apt-get install -y -qq --no-install-recommends nginx >/dev/null
rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*
nginx -v 2>&1 | grep -F '{version}'
"""


def reference() -> str:
    """The image's name under the lab registry (what the lab inventory's gateway_image says)."""
    return f"{REFERENCE_REPOSITORY}:v{VERSION}"


def tag(base: str) -> str:
    return f"{REPO}:{img._digest(base, SCRIPT.format(version=VERSION))}"


def ensure(client: Any, base: str) -> ei.EngineImage:
    """The gateway image on this engine, built (once) when its content hash is not there."""
    wanted = tag(base)
    if not img.exists(client, wanted):
        with img.build_lock():
            if not img.exists(client, wanted):
                started = time.monotonic()
                with tempfile.TemporaryDirectory() as empty:  # no wheels to mount
                    ei.build_in_container(
                        client,
                        base,
                        wanted,
                        SCRIPT.format(version=VERSION),
                        Path(empty),
                        "gateway",
                        ['ENTRYPOINT ["nginx"]', "WORKDIR /"],
                    )
                ei._log(f"{wanted} built in {time.monotonic() - started:.1f}s")
    return ei.EngineImage("gateway", VERSION, wanted, REFERENCE_REPOSITORY)
