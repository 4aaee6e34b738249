"""The gateway of a serving group, rendered: nginx's configuration and its container (pure).

vLLM's ``--api-key`` guards only ``/v1/*`` (``/invocations``, ``/tokenize``, ``/pooling``,
``/score`` and ``/metrics`` answer anyone; vLLM issue 58144) and MindIE has no key at all, so the
Plan's public port belongs to a reverse proxy that checks the key on every path and passes
everything else to the engine, which listens on the API node's loopback (Plan.gateway). nginx,
because operators know it, it streams server-sent events unbuffered, and every distribution and
registry carries it. The configuration holds the key, so roles/gateway writes it as a 0600 file.
"""

from __future__ import annotations

from collections.abc import Iterable

from ironserve.engines.base import SERVICE_RUN_ARGS, ContainerSpec
from ironserve.operations.templates import render
from ironserve.plan.derived import Gateway
from ironserve.serving.apikey import check_bearer_token

CONFIG_IN_CONTAINER = "/etc/ironserve-gateway.conf"
# Every local process of the API node may read /metrics (it reaches the engine there anyway).
LOOPBACK = "127.0.0.0/8"
MAX_BODY = "64m"
# A long generation streams for minutes; the engine, not the proxy, decides when it ends.
TIMEOUT = "3600s"


def key_pattern(key: str) -> str:
    """``key`` as a PCRE matching exactly itself: every character that is not a letter or a digit
    in a class of its own (a bearer token has no character that is special inside one)."""
    check_bearer_token(key)
    return "".join(c if c.isascii() and c.isalnum() else f"[{c}]" for c in key)


def config_text(group: str, gateway: Gateway, key: str, scrapers: Iterable[str]) -> str:
    """nginx.conf for ``gateway``; ``scrapers``: the addresses that read /metrics keyless."""
    return render(
        "gateway",
        "nginx.conf",
        group=group,
        gateway=gateway,
        key_pattern=key_pattern(key),
        scrapers=list(dict.fromkeys([LOOPBACK, *scrapers])),
        max_body=MAX_BODY,
        timeout=TIMEOUT,
    )


def container(gateway: Gateway, image: str) -> ContainerSpec:
    """nginx on the host network (the public port is the node's), restarted by dockerd, its
    configuration mounted read-only, no privilege gained after start."""
    return ContainerSpec(
        name=gateway.container,
        image=image,
        run_args=[
            *SERVICE_RUN_ARGS,
            "-v",
            f"{gateway.config_file}:{CONFIG_IN_CONTAINER}:ro",
            "--entrypoint",
            "nginx",
        ],
        env={},
        command=["-c", CONFIG_IN_CONTAINER],
    )
