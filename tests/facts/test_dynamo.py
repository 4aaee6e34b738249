"""facts/dynamo.py on the lab's real etcd and NATS (tests/fixtures/dynamo, captured with the
fact's own command): the registrations the frontend routes to, each with the worker address and
system port its model card names; etcd or NATS down."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from ironserve.facts.dynamo import discovery_command, parse_discovery

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dynamo"
PREFILL, DECODE = ("172.30.108.11", 18100), ("172.30.108.12", 18100)


def _read(name: str) -> dict[str, Any]:
    found = parse_discovery((FIXTURES / name).read_text().splitlines())
    assert found is not None
    return found


def _generate(found: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {
        (r["component"], r["address"], r["port"])
        for r in found["registrations"]
        if r["endpoint"] == "generate"
    }


def test_both_pools_registered_with_their_workers_address_and_port() -> None:
    found = _read("discovery-ok.txt")
    assert (found["etcd"], found["nats"]) == (None, 200)
    # Dynamo names the decode pool's component "backend".
    assert _generate(found) == {("prefill", *PREFILL), ("backend", *DECODE)}
    assert all(len(r["instance_id"]) >= 12 for r in found["registrations"])


def test_a_frozen_or_stopped_worker_loses_its_registration() -> None:
    assert _generate(_read("discovery-decode-paused.txt")) == {("prefill", *PREFILL)}
    assert _generate(_read("discovery-prefill-stopped.txt")) == {("backend", *DECODE)}


def test_etcd_or_nats_down() -> None:
    etcd = _read("discovery-etcd-stopped.txt")
    assert etcd["etcd"] is not None and "Failed to connect" in etcd["etcd"]
    assert etcd["registrations"] == [] and etcd["nats"] == 200
    nats = _read("discovery-nats-stopped.txt")
    assert (nats["etcd"], nats["nats"]) == (None, 0)
    assert len(_generate(nats)) == 2
    assert parse_discovery(["@@no-curl"]) is None


def test_the_command_asks_etcds_v1_prefix_and_nats_healthz() -> None:
    command = discovery_command("http://10.0.0.1:2379", "http://10.0.0.1:8222")
    assert "http://10.0.0.1:2379/v3/kv/range" in command
    assert "http://10.0.0.1:8222/healthz" in command
    body = json.loads(command.split(" -d '")[1].split("'")[0])
    assert base64.b64decode(body["key"]) == b"v1/"
    assert base64.b64decode(body["range_end"]) == b"v10"  # every key under v1/
