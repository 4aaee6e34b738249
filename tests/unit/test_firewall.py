"""roles/firewall's settings and spec (pure): the networks are validated and normalised, each
set holds one address family with overlaps merged (nftables refuses overlapping intervals), the
API and admin ports open only where given. The rendered files are golden
(tests/golden/roles/firewall.*); the rules' effect is proven on the lab (test_serve_ray.py)."""

from __future__ import annotations

import pytest

from ironserve.errors import InputError
from ironserve.roles.firewall.defaults import FirewallData
from ironserve.roles.firewall.ruleset import ruleset_text, spec_for

SSH = ((22,), ("0.0.0.0/0",))


def test_networks_are_normalised_and_a_bad_one_names_host_and_field() -> None:
    data = FirewallData.from_data("n1", {"serving_allowed_cidrs": ["10.1.2.3/8", "2001:db8::1"]})
    assert data.serving_allowed_cidrs == ("10.0.0.0/8", "2001:db8::1/128")
    with pytest.raises(InputError) as error:
        FirewallData.from_data("n1", {"firewall_admin_cidrs": ["10.0.0.300/8"]})
    assert "n1" in str(error.value) and "firewall_admin_cidrs" in str(error.value)
    with pytest.raises(InputError, match="firewall_ssh_ports"):
        FirewallData.from_data("n1", {"firewall_ssh_ports": [70000]})


def test_sets_split_families_and_merge_overlaps() -> None:
    spec = spec_for(
        "n1",
        "g",
        ["10.0.0.2", "10.0.0.9", "10.0.0.2"],
        ssh=SSH,
        api=((8000,), ("10.0.0.0/8", "10.4.0.0/16", "fd00::/8")),
        admin=None,
        monitoring=False,
    )
    assert spec.peers == ("10.0.0.2", "10.0.0.9")
    assert spec.sets() == [
        ("peers_ip", "ipv4", ["10.0.0.2/32", "10.0.0.9/32"]),
        ("ssh_ip", "ipv4", ["0.0.0.0/0"]),
        ("api_ip", "ipv4", ["10.0.0.0/8"]),
        ("api_ip6", "ipv6", ["fd00::/8"]),
    ]
    assert not spec.has("ssh", "ip6")


def test_api_and_admin_ports_only_where_given() -> None:
    worker = ruleset_text(
        spec_for("n2", "g", ["10.0.0.2"], ssh=SSH, api=None, admin=None, monitoring=False)
    )
    assert "8000" not in worker and "@peers_ip accept" in worker and "policy drop" in worker
    no_admin_networks = spec_for(
        "n1", "g", ["10.0.0.2"], ssh=SSH, api=None, admin=((9090,), ()), monitoring=True
    )
    assert [r.name for r in no_admin_networks.public] == ["ssh"]
