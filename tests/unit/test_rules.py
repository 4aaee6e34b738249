"""ironserve.rules: each rule on its own, and the same node judged alike by everyone who reads it
(preflight, health, the weights role's guard; health and the alert rules)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ironserve.facts.host import DirBytes, FreeDiskBytes, Memlock, parse_lspci, parse_memlock
from ironserve.facts.metrics import KV_USAGE, WAITING, EngineMetrics
from ironserve.facts.rdma import parse_ibstat
from ironserve.health import host_checks
from ironserve.health.model import Status
from ironserve.rules import disk, fabric, limits, serving

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
GIB = 1024**3
MIB = 1024**2


# --------------------------------------------------------------------------------------------
# disk


def test_disk_need_is_the_weights_times_the_margin_less_what_is_present() -> None:
    assert disk.disk_need(10 * GIB).need_bytes == int(10 * GIB * disk.DISK_MARGIN)
    assert disk.disk_need(10 * GIB, 4 * GIB).need_bytes == int(11 * GIB) - 4 * GIB
    assert disk.disk_need(10 * GIB, 10 * GIB, 1.5).need_bytes == 5 * GIB


def test_disk_need_never_falls_below_the_floor() -> None:
    converged = disk.disk_need(100 * MIB, 100 * MIB)  # 10 MiB margin: the floor instead
    assert converged.need_bytes == disk.DISK_FLOOR_BYTES
    assert not converged.enough(disk.DISK_FLOOR_BYTES - 1)
    assert converged.enough(disk.DISK_FLOOR_BYTES)
    assert disk.disk_need(GIB, 5 * GIB).need_bytes == disk.DISK_FLOOR_BYTES  # more than planned


def test_node_disk_need_is_the_need_of_an_empty_node() -> None:
    assert disk.node_disk_need_bytes(20 * GIB) == disk.disk_need(20 * GIB, 0).need_bytes
    assert "22.0 GiB" in disk.disk_need(20 * GIB).explain()


# --------------------------------------------------------------------------------------------
# limits


def test_memlock_expectation_follows_the_sites_container_limit() -> None:
    lab = {"default-ulimits": {"memlock": {"Name": "memlock", "Hard": 8 * MIB, "Soft": 8 * MIB}}}
    assert limits.memlock_expected(True, {}) == limits.UNLIMITED
    assert limits.memlock_expected(True, lab) == 8 * MIB  # containers cannot get more here
    assert limits.memlock_expected(False, {}) is None
    unlimited = {"default-ulimits": {"memlock": {"Hard": -1, "Soft": -1}}}
    assert limits.memlock_expected(False, unlimited) == limits.UNLIMITED


@pytest.mark.parametrize(
    ("shell", "expected", "enough"),
    [
        (["unlimited"], limits.UNLIMITED, True),
        (["8192"], limits.UNLIMITED, False),  # 8 MiB where unlimited is wanted
        (["8192"], 8 * MIB, True),
        (["4096"], 8 * MIB, False),
        (["64"], None, True),
    ],
)
def test_memlock_enough(shell: list[str], expected: int | None, enough: bool) -> None:
    limit = parse_memlock(shell)
    assert limit is not None
    assert limits.memlock_enough(limit, expected) is enough


def test_shm_minimum() -> None:
    assert limits.shm_enough(limits.SHM_MIN_BYTES)
    assert not limits.shm_enough(limits.SHM_MIN_BYTES - 1)


# --------------------------------------------------------------------------------------------
# fabric

OUTPUTS = TESTS / "fixtures" / "outputs"
FACTS = TESTS / "facts" / "fixtures"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_hcas_from_the_inventory_else_the_mellanox_functions() -> None:
    pci = parse_lspci(
        [
            '0000:1a:00.0 "Infiniband controller [0207]" "Mellanox Technologies [15b3]" '
            '"MT2910 Family [ConnectX-7] [1021]"',
            '0000:1b:00.0 "Ethernet controller [0200]" "Mellanox Technologies [15b3]" '
            '"MT2892 Family [ConnectX-6 Dx] [101d]"',
            '0000:05:00.0 "Bridge [0680]" "NVIDIA Corporation [10de]" "Device [22a3]"',
        ]
    )
    assert fabric.node_hcas([], pci) == ["0000:1a:00.0", "0000:1b:00.0"]
    assert fabric.node_hcas(["mlx5_0"], pci) == ["mlx5_0"]
    assert fabric.node_hcas([], None) == []


def test_port_problems_and_slow_ports() -> None:
    some_down = parse_ibstat(_lines(OUTPUTS / "ibstat.h100.some-down.txt"))
    problems = fabric.port_problems(some_down, [])
    assert "mlx5_2 port 1 is DOWN (Disabled)" in problems
    assert fabric.port_problems(some_down, ["mlx5_0", "mlx5_3"]) == []  # the inventory's HCAs
    assert fabric.port_problems(some_down, ["mlx5_99"]) == ["HCA mlx5_99 not found"]
    up = parse_ibstat(_lines(FACTS / "ibstat.h100.all-active.spaces.txt"))
    assert fabric.port_problems(up, []) == [] and fabric.slow_ports(up) == []
    assert fabric.slow_ports(up, 800) and "400 Gb/s" in fabric.slow_ports(up, 800)[0]


def test_fabric_manager_is_wanted_where_nvswitches_are() -> None:
    assert fabric.fabric_manager_wanted("auto", True) is True
    assert fabric.fabric_manager_wanted("auto", False) is False
    assert fabric.fabric_manager_wanted("auto", None) is None  # unknown stays unknown
    assert fabric.fabric_manager_wanted(False, True) is False
    assert fabric.fabric_manager_wanted(True, False) is True


# --------------------------------------------------------------------------------------------
# serving: health's verdict and the alert rules from the same numbers


@pytest.mark.parametrize(
    ("kv", "waiting", "pressure"),
    [
        (serving.KV_FULL, 0.0, True),
        (serving.KV_FULL - 0.01, 0.0, False),
        (serving.KV_BUSY, 1.0, True),
        (serving.KV_BUSY - 0.01, 5.0, False),
        (None, 9.0, False),
    ],
)
def test_kv_pressure_in_health(kv: float | None, waiting: float, pressure: bool) -> None:
    from ironserve.health.serving_tier import Endpoint, judge_metrics

    ep = Endpoint("g", "n1", "http://10.0.0.1:8000", "m", "sglang", None)
    result = judge_metrics(ep, EngineMetrics(1.0, waiting, kv, "sglang:token_usage", ("m",)))
    assert serving.kv_pressure(kv, waiting) is pressure
    assert (result.status is Status.WARN) is pressure


def test_alert_rules_carry_healths_numbers_and_every_engines_names() -> None:
    import yaml

    from ironserve.roles.monitoring import render
    from ironserve.roles.monitoring.defaults import DEFAULTS

    doc = yaml.safe_load(render.alert_rules([], DEFAULTS))
    rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    full = rules["IronserveKvCacheFull"]["expr"]
    queue = rules["IronserveRequestsQueueing"]["expr"]
    assert full.endswith(f">= {serving.KV_FULL:g}")
    assert f"> {serving.QUEUE_MAX}" in queue and f">= {serving.KV_BUSY:g}" in queue
    for name in KV_USAGE:  # the parser's names, vLLM's and SGLang's
        assert f"{name}{{" in full and f"{name}{{" in queue
    for name in WAITING:
        assert f"{name}{{" in queue
    assert {m for m in re.findall(r"(?:vllm|sglang):[a-z_]+", full + queue)} == {
        *KV_USAGE,
        *WAITING,
    }


# --------------------------------------------------------------------------------------------
# One node, one verdict: preflight, health and the weights role's guard read the same facts


class _Data:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def dict(self) -> dict[str, Any]:
        return dict(self.values)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


class _Host:
    """A node answering every fact from a table, by fact class (kwargs ignored)."""

    def __init__(self, data: dict[str, Any], facts: dict[str, Any]) -> None:
        self.name, self.groups, self.data = "n1", (), _Data(data)
        self.facts = facts

    def get_fact(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        return self.facts.get(cls.__name__)


class _Inventory(list[Any]):
    def get_host(self, name: str) -> Any:
        return next(h for h in self if h.name == name)

    def get_active_hosts(self) -> list[Any]:
        return list(self)


class _State:
    def __init__(self, host: _Host) -> None:
        self.inventory = _Inventory([host])


NODE = {
    "node_role": "head",
    "node_ip": "10.0.0.1",
    "accelerator_kind": "h100-80g",
    "accelerator_count": 8,
    "engine_kind": "vllm",
    "model_id": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "model_weights_dir": "/data/models",
}


def _node(free: int, present: int, data: dict[str, Any] | None = None) -> tuple[_State, _Host]:
    facts: dict[str, Any] = {
        "PciDevices": [],
        "InterfaceAddresses": {"eth0": ["10.0.0.1"]},
        FreeDiskBytes.__name__: free,
        DirBytes.__name__: present,
        "LinuxDistribution": {"name": "Ubuntu", "release_meta": {"ID": "ubuntu"}},
        "KernelVersion": "6.8.0",
        "MemlockLimit": Memlock(unlimited=True, bytes=None),
        "ShmSize": None,
        "TimeSync": None,
        "Which": None,
    }
    host = _Host({**NODE, **(data or {})}, facts)
    return _State(host), host


def _preflight_disk_fails(state: _State, host: _Host) -> bool:
    from ironserve.roles.preflight.deploy import host_findings

    return any(f.check == "disk" and f.fatal for f in host_findings(state, host))


def _health_disk(state: _State, host: _Host) -> Any:
    from ironserve.deploy.context import host_plans
    from ironserve.health.runner import _host_checks, _Node, role_models

    hp = host_plans(state)[host.name]
    node = _Node(host, role_models())
    return next(r for r in _host_checks(node, hp, "nvidia", []) if r.check == "host.disk")


def _weights_refuses(state: _State, host: _Host, present: int) -> bool:
    from ironserve.deploy.context import host_plans
    from ironserve.roles.weights.deploy import disk_refusal

    hp = host_plans(state)[host.name]
    node_state = {"free_bytes": host.facts[FreeDiskBytes.__name__], "free_path": "/data"}
    refusal = disk_refusal(host.name, node_state, hp.plan.disk_of(host.name), present, "")
    return refusal is not None


def _weights_bytes() -> int:
    from ironserve.deploy.context import host_plans

    state, host = _node(0, 0)
    return host_plans(state)[host.name].plan.sizing.weights_bytes


def test_a_converged_node_between_the_old_figures_gets_one_verdict() -> None:
    """Before: preflight wanted weights x 1.1 free whatever was present (FAIL), health wanted
    weights x 1.1 less what is present (OK). Now both apply ironserve.rules.disk."""
    weights = _weights_bytes()
    free = weights // 2  # above health's old 0.1 x weights, below preflight's old 1.1 x weights
    assert int(weights * 1.1) - weights < free < int(weights * 1.1)
    state, host = _node(free, weights)
    assert not _preflight_disk_fails(state, host)
    assert _health_disk(state, host).status is Status.OK
    assert not _weights_refuses(state, host, weights)


@pytest.mark.parametrize("present_share", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("free_share", [0.0, 0.05, 0.099, 0.11, 0.5, 0.6, 1.09, 1.11, 2.0])
def test_preflight_health_and_weights_agree_on_the_disk(
    free_share: float, present_share: float
) -> None:
    weights = _weights_bytes()
    free, present = int(weights * free_share), int(weights * present_share)
    state, host = _node(free, present)
    preflight_fails = _preflight_disk_fails(state, host)
    health = _health_disk(state, host)
    assert health.status in (Status.OK, Status.FAIL)
    assert preflight_fails is (health.status is Status.FAIL)
    assert _weights_refuses(state, host, present) is preflight_fails
    assert preflight_fails is not disk.disk_need(weights, present).enough(free)


def test_the_sites_margin_moves_every_verdict_together() -> None:
    weights = _weights_bytes()
    state, host = _node(int(weights * 1.3), 0, {"preflight_disk_margin": 1.5})
    assert _preflight_disk_fails(state, host)
    assert _health_disk(state, host).status is Status.FAIL
    assert _weights_refuses(state, host, 0)


def test_preflight_health_and_weights_read_the_nodes_need_from_the_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """None of the three computes the need from its own inputs: a Plan stating a larger need
    for the node turns every verdict."""
    from ironserve.deploy.context import host_plans
    from ironserve.plan.plan import Plan

    weights = _weights_bytes()
    state, host = _node(int(weights * 1.2), 0)  # room for weights x 1.1
    assert not _preflight_disk_fails(state, host)
    stated = host_plans(state)[host.name].plan.disk_of(host.name)
    larger = stated.model_copy(
        update={"margin": 1.3, "need_bytes": disk.node_disk_need_bytes(weights, 1.3)}
    )
    monkeypatch.setattr(Plan, "disk_of", lambda self, name: larger)
    state, host = _node(int(weights * 1.2), 0)
    assert _preflight_disk_fails(state, host)
    assert _health_disk(state, host).status is Status.FAIL
    assert _weights_refuses(state, host, 0)


@pytest.mark.parametrize("shell", [["unlimited"], ["8192"], ["65536"]])
@pytest.mark.parametrize("hard", [None, -1, 8 * MIB, 64 * MIB])
def test_preflight_and_health_agree_on_memlock(shell: list[str], hard: int | None) -> None:
    data = {}
    if hard is not None:
        data["container_runtime_daemon_settings"] = {
            "default-ulimits": {"memlock": {"Name": "memlock", "Hard": hard, "Soft": hard}}
        }
    state, host = _node(10 * GIB, 0, data)
    host.facts["MemlockLimit"] = parse_memlock(shell)
    from ironserve.roles.preflight.deploy import host_findings

    noted = any(f.check == "memlock" for f in host_findings(state, host))
    from ironserve.health.runner import _host_checks, _Node, role_models

    node = _Node(host, role_models())
    health = next(r for r in _host_checks(node, None, "nvidia", []) if r.check == "host.memlock")
    assert noted is (health.status is Status.WARN)
    assert host_checks.memlock("n1", parse_memlock(shell), None).status is Status.OK
