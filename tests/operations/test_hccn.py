"""ironserve.operations.hccn: facts in, commands out (the gap between live and planned only)."""

from __future__ import annotations

from typing import Any

import pytest

from ironserve.operations.hccn import HCCN_TOOL, PortSpec, node_commands, port_commands

SPEC = PortSpec(npu=2, address="10.0.0.12", netmask="255.255.255.0", gateway="10.0.0.254")
IP = {"ipaddr": "10.0.0.12", "netmask": "255.255.255.0"}
TLS_OFF = {"enabled": False, "preconfigured": True, "alarm_days": 60}
CONF = {"address": "10.0.0.12", "netmask": "255.255.255.0", "netdetect": "10.0.0.254",
        "gateway": "10.0.0.254"}  # fmt: skip


def args(commands: list[list[str]]) -> list[str]:
    assert all(c[0] == HCCN_TOOL for c in commands)
    return [" ".join(c[1:]) for c in commands]


def test_configured_port_needs_nothing() -> None:
    assert port_commands(SPEC, IP, TLS_OFF, CONF) == []


def test_bare_port_gets_everything_in_order() -> None:
    assert args(port_commands(SPEC, None, None, None)) == [
        "-i 2 -ip -s address 10.0.0.12 netmask 255.255.255.0",
        "-i 2 -netdetect -s address 10.0.0.254",
        "-i 2 -gateway -s gateway 10.0.0.254",
        "-i 2 -tls -s enable 0",
    ]


@pytest.mark.parametrize(
    ("ip", "tls", "conf", "expected"),
    [
        ({**IP, "netmask": "255.255.0.0"}, TLS_OFF, CONF, ["-ip -s address 10.0.0.12 netmask"]),
        ({"ipaddr": "-.-.-.-", "netmask": None}, TLS_OFF, CONF, ["-ip -s address"]),
        (IP, {**TLS_OFF, "enabled": True}, CONF, ["-tls -s enable 0"]),
        (IP, {**TLS_OFF, "enabled": None}, CONF, ["-tls -s enable 0"]),
        (IP, TLS_OFF, {**CONF, "gateway": "10.0.0.1"}, ["-gateway -s gateway 10.0.0.254"]),
        (IP, TLS_OFF, {**CONF, "netdetect": ""}, ["-netdetect -s address 10.0.0.254"]),
    ],
)
def test_only_the_gap(ip: Any, tls: Any, conf: Any, expected: list[str]) -> None:
    got = args(port_commands(SPEC, ip, tls, conf))
    assert len(got) == len(expected)
    assert all(g.startswith(f"-i 2 {e}") for g, e in zip(got, expected, strict=True))


def test_tls_on_and_no_gateway() -> None:
    spec = PortSpec(npu=0, address="10.0.0.10", netmask="255.255.255.0", gateway=None, tls=True)
    assert args(port_commands(spec, None, TLS_OFF, {})) == [
        "-i 0 -ip -s address 10.0.0.10 netmask 255.255.255.0",
        "-i 0 -tls -s enable 1",
    ]


def test_node_commands_reads_each_ports_facts() -> None:
    specs = [SPEC, PortSpec(npu=3, address="10.0.0.13", netmask="255.255.255.0")]
    facts_ip = {2: IP}
    assert args(node_commands(specs, facts_ip, {2: TLS_OFF, 3: TLS_OFF}, {2: CONF})) == [
        "-i 3 -ip -s address 10.0.0.13 netmask 255.255.255.0"
    ]
