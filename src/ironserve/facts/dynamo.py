"""Dynamo's control plane as the frontend sees it, read on the head: the workers registered in
etcd and whether NATS answers.

Dynamo 1.x keeps its discovery in etcd under ``v1/``, every key on its process's lease (gone
when the process stops renewing it): ``v1/instances/<namespace>/<component>/<endpoint>/<id hex>``
per served endpoint (the KV router's view of the pools: a disaggregated vLLM or SGLang group's
prefill pool is the component ``prefill``, its decode pool ``backend``), and
``v1/mdc/<namespace>/<component>/<endpoint>/<id hex>`` per model registration, whose card links
the model's files on the worker's own system server (``http://<address>:<DYN_SYSTEM_PORT>/
v1/metadata/...``): that address and port say which planned worker the registration is.

The etcd image has no etcdctl, so the fact asks etcd's v3 HTTP gateway (``POST /v3/kv/range``,
keys and values base64) with curl on the head, at the address the workers use
(``ETCD_ENDPOINTS``), and NATS's monitoring ``/healthz``.

.. code:: python

    host.get_fact(DynamoDiscovery, etcd="http://10.0.0.1:2379", nats="http://10.0.0.1:8222")
    {"etcd": None,            # or why etcd did not answer ("curl: (7) Failed to connect ...")
     "nats": 200,             # /healthz's HTTP status, 0: no answer
     "registrations": [{"namespace": "default", "component": "backend", "endpoint": "generate",
                        "instance_id": "6a6ca23de0e77e08", "address": "10.0.0.3", "port": 18100}]}

None when the head has no curl.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from typing import Any

from pyinfra.api.facts import FactBase

PREFIX = "v1/"
_INSTANCE = re.compile(r"^v1/instances/([^/]+)/([^/]+)/([^/]+)/([0-9a-f]+)$")
_CARD = re.compile(r"^v1/mdc/([^/]+)/([^/]+)/([^/]+)/([0-9a-f]+)$")
_SYSTEM_URL = re.compile(r"https?://(\[[^\]]+\]|[^/:\"]+):(\d+)/v1/metadata/")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _range_end(prefix: str) -> str:
    """etcd's end of a prefix range: the prefix with its last byte plus one."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def discovery_command(etcd: str, nats: str) -> str:
    body = json.dumps({"key": _b64(PREFIX), "range_end": _b64(_range_end(PREFIX))})
    etcd_url = shlex.quote(f"{etcd.rstrip('/')}/v3/kv/range")
    healthz = shlex.quote(f"{nats.rstrip('/')}/healthz")
    return "; ".join(
        [
            "command -v curl >/dev/null 2>&1 || { echo @@no-curl; exit 0; }",
            "echo @@etcd",
            f"curl -sS -m 5 -X POST {etcd_url} -d {shlex.quote(body)} 2>&1",
            "echo",
            "echo @@nats",
            f"curl -s -o /dev/null -m 5 -w '%{{http_code}}\\n' {healthz} || true",
            "true",
        ]
    )


def _sections(output: list[str]) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output:
        if line.strip() in ("@@etcd", "@@nats", "@@no-curl"):
            current = parts.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line)
    return parts


def parse_registrations(kvs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each live endpoint instance with the worker address and system port its model card
    names (None when it registered no model)."""
    pairs = [
        (base64.b64decode(kv.get("key", "")).decode(), base64.b64decode(kv.get("value", "")))
        for kv in kvs
    ]
    where: dict[str, tuple[str, int]] = {}
    for key, value in pairs:
        card = _CARD.match(key)
        url = _SYSTEM_URL.search(value.decode(errors="replace")) if card else None
        if card and url:
            where[card[4]] = (url[1].strip("[]"), int(url[2]))
    found = []
    for key, _ in pairs:
        instance = _INSTANCE.match(key)
        if instance is None:
            continue
        address, port = where.get(instance[4], (None, None))
        found.append(
            {
                "namespace": instance[1],
                "component": instance[2],
                "endpoint": instance[3],
                "instance_id": instance[4],
                "address": address,
                "port": port,
            }
        )
    return found


def registered_at(found: dict[str, Any], address: str, port: int | None) -> list[str]:
    """The instance ids whose ``generate`` endpoint is the worker at ``address``:``port``: one
    for a worker that serves; none when it is not registered; more than one while a dead
    process's registration lingers until its lease expires. Health and the restart's readiness
    wait both judge by it."""
    return sorted(
        r["instance_id"]
        for r in found.get("registrations") or []
        if r.get("endpoint") == "generate" and r.get("address") == address and r.get("port") == port
    )


def parse_discovery(output: list[str]) -> dict[str, Any] | None:
    parts = _sections(output)
    if "@@no-curl" in parts:
        return None
    text = "\n".join(parts.get("@@etcd", [])).strip()
    doc: dict[str, Any] = {"etcd": None, "nats": 0, "registrations": []}
    try:
        answer = json.loads(text)
        if not isinstance(answer, dict) or "header" not in answer:
            raise ValueError(text)
        doc["registrations"] = parse_registrations(answer.get("kvs") or [])
    except ValueError:
        doc["etcd"] = (text.splitlines() or ["no answer"])[-1][:160]
    codes = [line.strip() for line in parts.get("@@nats", []) if line.strip().isdigit()]
    doc["nats"] = int(codes[-1]) if codes else 0
    return doc


class DynamoDiscovery(FactBase[dict[str, Any] | None]):
    """The workers registered in Dynamo's etcd and NATS's health, asked on the head (see the
    module docstring for the shape).

    + etcd: etcd's client URL (the group's ``ETCD_ENDPOINTS``)
    + nats: NATS's monitoring URL
    """

    def command(self, etcd: str, nats: str) -> str:
        return discovery_command(etcd, nats)

    @staticmethod
    def default() -> dict[str, Any] | None:
        return None

    def process(self, output: list[str]) -> dict[str, Any] | None:
        return parse_discovery(output)
