"""roles/ascend on @fake hosts: what a first run does, that a configured node is left alone, and
the rank table built from the live hccn_tool facts (and refused when they are wrong)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import PyinfraError

from ironserve.ascend.ranktable import RankTableError, build_rank_table, render_rank_table
from ironserve.config.inventory import HostRecord
from ironserve.config.loader import build_cluster
from ironserve.deploy import context
from ironserve.engines.mindie import rank_table, render_json
from ironserve.plan.plan import plan_group
from ironserve.roles.ascend import deploy_ascend
from ironserve.roles.ascend.defaults import DRIVER_VERSION, FIRMWARE_VERSION
from ironserve.roles.ascend.deploy import installed_version
from ironserve.roles.ascend.render import port_specs, render_hccn_conf, server_npus
from ironserve.roles.preflight import deploy_preflight
from ironserve.roles.preflight.checks import check_npu_tls
from tests.deploys.conftest import FakeRun

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ascend"
HOSTS = ("@fake/atlas-0", "@fake/atlas-1")
ADDRESSES = ("10.197.90.10", "10.197.90.11")
NETMASK = "255.255.255.0"
GATEWAY = "10.197.91.254"
GROUP_DATA: dict[str, Any] = {
    "model_id": "deepseek-ai/DeepSeek-R1",
    "model_format": "w8a8",
    "model_max_len": 32768,
    "engine_kind": "mindie",
    "accelerator_kind": "ascend-910b-64g",
    "accelerator_count": 8,
    "network_socket_ifname": "enp189s0f0",
    "npu_netmask": NETMASK,
    "npu_gateway": GATEWAY,
    "npu_tls": False,
    "ascend_installer_url": "http://mirror.example/ascend/",
    "ascend_checksums": {
        "driver": {DRIVER_VERSION: hashlib.sha256(b"driver").hexdigest()},
        "firmware": {FIRMWARE_VERSION: hashlib.sha256(b"firmware").hexdigest()},
    },
    "fake_delay": 0,
    "fake_delay_jitter": 0,
}
RANK_TABLE = "/etc/ironserve/default/rank_table_file.json"


def device_ips(node: int) -> list[str]:
    return [f"10.197.91.{10 * (node + 1) + i}" for i in range(8)]


def unconfigured() -> dict[str, Any]:
    """A bare node: no user, no driver, hccn_tool absent (its facts print nothing)."""
    return {}


def _stat(path: str, user: str, mode: str, size: int = 4096) -> str:
    return f"user={user} group={user} mode={mode} atime=0 mtime=0 ctime=0 size={size} '{path}'"


def configured(ips: list[str], tls: int = 0) -> dict[str, Any]:
    """A node that roles/ascend has already configured as planned (rank table included)."""
    ip_out, tls_out, conf = [], [], []
    for npu, ip in enumerate(ips):
        ip_out += [f"@@npu {npu}", f"ipaddr:{ip}", f"netmask:{NETMASK}"]
        tls_out += [
            f"@@npu {npu}",
            f"dev_id:{npu}, tls switch[{tls}](0:disable, 1:enable), tls preconfigured[1]"
            "(0:non-preset, 1:preset), tls alarm time threshold[60]days",
        ]
        conf += [
            f"address_{npu}={ip}",
            f"netmask_{npu}={NETMASK}",
            f"netdetect_{npu}={GATEWAY}",
            f"gateway_{npu}={GATEWAY}",
            f"tls_enable_{npu}={tls}",
        ]
    table = render_json(rank_table(_plan().context))
    stat = "%N' "
    return {
        f"{stat}{RANK_TABLE}": _stat(RANK_TABLE, "root", "-rw-r-----", len(table)),
        f"sha1sum {RANK_TABLE}": f"{hashlib.sha1(table.encode()).hexdigest()}  {RANK_TABLE}",
        f"{stat}/etc/ironserve/default": _stat("/etc/ironserve/default", "root", "drwxr-x---"),
        f"{stat}/home/HwHiAiUser": _stat("/home/HwHiAiUser", "HwHiAiUser", "drwxr-xr-x"),
        "driver/version.info": [f"Version={DRIVER_VERSION}"],
        "firmware/version.info": [f"Version={FIRMWARE_VERSION}"],
        "cat /etc/group": ["root:x:0:", "HwHiAiUser:x:1000:"],
        "cat /etc/passwd": [
            "HwHiAiUser:x:1000:1000::/home/HwHiAiUser:/bin/bash|HwHiAiUser|HwHiAiUser||!"
        ],
        "-ip -g": ip_out,
        "-tls -g": tls_out,
        "/etc/hccn.conf": conf,
    }


def hosts(responses: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            name,
            {
                "node_role": "head" if i == 0 else "worker",
                "node_ip": ADDRESSES[i],
                "npu_device_ips": device_ips(i),
                "fake_responses": responses[i],
            },
        )
        for i, name in enumerate(HOSTS)
    ]


def hccn_sets(commands: list[str]) -> list[str]:
    return [c for c in commands if "hccn_tool" in c and " -s " in c]


def test_first_run_installs_and_configures_every_port() -> None:
    responses = [unconfigured(), unconfigured()]
    run = FakeRun(hosts(responses), GROUP_DATA)
    # Once the last port's hccn commands have run, each node answers as configured: the rank
    # table, written after the hccn operations of every node, is read back from those answers.
    for i, name in enumerate(HOSTS):
        run.change_after(name, "-i 7 -tls -s", configured(device_ips(i)))
    run.prepare(deploy_ascend)
    run.execute()
    assert run.failed() == []
    commands = run.commands(HOSTS[1])
    assert "groupadd HwHiAiUser" in commands
    assert any(c.startswith("useradd") and "HwHiAiUser" in c for c in commands)
    installs = [c for c in commands if "--full" in c]
    assert [c.split("/")[-1] for c in installs] == [
        f"Ascend-hdk-910b-npu-driver_{DRIVER_VERSION}_linux-x86-64.run --full --quiet",
        f"Ascend-hdk-910b-npu-firmware_{FIRMWARE_VERSION}.run --full --quiet",
    ]
    tool = "/usr/local/Ascend/driver/tools/hccn_tool"
    sets = hccn_sets(commands)
    assert len(sets) == 8 * 4
    assert sets[:4] == [
        f"{tool} -i 0 -ip -s address 10.197.91.20 netmask {NETMASK}",
        f"{tool} -i 0 -netdetect -s address {GATEWAY}",
        f"{tool} -i 0 -gateway -s gateway {GATEWAY}",
        f"{tool} -i 0 -tls -s enable 0",
    ]
    # Download (verified by the sums in ascend_checksums) before check before install, driver
    # before firmware.
    downloads = [c for c in commands if c.startswith("mkdir -p /var/cache/ironserve/ascend;")]
    assert len(downloads) == 2
    assert hashlib.sha256(b"driver").hexdigest() in downloads[0] and "npu-driver" in downloads[0]
    assert hashlib.sha256(b"firmware").hexdigest() in downloads[1]
    driver = [c for c in commands if "npu-driver" in c]
    assert "--check" in driver[-3] and "--version" in driver[-2] and "--full" in driver[-1]
    # The rank table was read back from the live facts at execution, on every node.
    assert any(c.startswith(f"chmod 0640 {RANK_TABLE}") for c in commands)


def test_second_run_changes_nothing() -> None:
    run = FakeRun(hosts([configured(device_ips(0)), configured(device_ips(1))]), GROUP_DATA)
    run.prepare(deploy_ascend)
    run.execute()
    assert run.failed() == []
    for name in HOSTS:
        assert run.changed_ops(name) == []
        commands = run.commands(name)
        assert hccn_sets(commands) == []
        assert not [c for c in commands if "--full" in c or "useradd" in c or "groupadd" in c]
        # files.put of an unchanged rank table compares checksums and uploads nothing
        assert not any(c.startswith("chmod") for c in commands)


def test_only_the_gap_is_closed() -> None:
    # atlas-1 drifted: NPU 3 carries a wrong address and TLS is on everywhere.
    drifted = configured(device_ips(1), tls=1)
    drifted["-ip -g"] = [line.replace("10.197.91.23", "10.197.91.99") for line in drifted["-ip -g"]]
    run = FakeRun(hosts([configured(device_ips(0)), drifted]), GROUP_DATA)
    run.change_after(HOSTS[1], "-i 7 -tls -s", configured(device_ips(1)))
    run.prepare(deploy_ascend)
    run.execute()
    assert run.failed() == []
    assert [c.split("hccn_tool ")[1] for c in hccn_sets(run.commands(HOSTS[1]))] == [
        *(f"-i {npu} -tls -s enable 0" for npu in range(3)),
        f"-i 3 -ip -s address 10.197.91.23 netmask {NETMASK}",
        "-i 3 -tls -s enable 0",
        *(f"-i {npu} -tls -s enable 0" for npu in range(4, 8)),
    ]
    assert hccn_sets(run.commands(HOSTS[0])) == []
    # the rank table waited for atlas-1's ports, then was read back and written on both nodes
    for name in HOSTS:
        assert any(c.startswith(f"chmod 0640 {RANK_TABLE}") for c in run.commands(name))


@pytest.mark.parametrize("bad", ["10.197.90.1.10", "-.-.-.-"])
def test_bad_live_device_ip_fails_the_rank_table(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    # atlas-1's NPU 5 keeps answering a bad address although hccn_tool was told to set it
    # (gpustack #2551: -.-.-.- in the rank table): no rank table is written, on any node.
    broken = configured(device_ips(1))
    broken["-ip -g"] = [line.replace("10.197.91.25", bad) for line in broken["-ip -g"]]
    run = FakeRun(hosts([configured(device_ips(0)), broken]), GROUP_DATA)
    run.prepare(deploy_ascend)
    with pytest.raises(PyinfraError, match="No hosts remaining"):
        run.execute()
    assert sorted(run.failed()) == sorted(HOSTS)
    assert [c.split("hccn_tool ")[1] for c in hccn_sets(run.commands(HOSTS[1]))] == [
        f"-i 5 -ip -s address 10.197.91.25 netmask {NETMASK}"
    ]
    for name in HOSTS:
        assert not any(c.startswith(f"chmod 0640 {RANK_TABLE}") for c in run.commands(name))
    assert "@fake/atlas-1: NPU 5: device IP" in caplog.text
    assert bad in caplog.text
    assert "@fake/atlas-0: NPU" not in caplog.text


# --- pure: rank table and hccn.conf ------------------------------------------------------


def _plan() -> Any:
    records = [HostRecord(name, (), {**GROUP_DATA, **data}) for name, data in hosts([{}, {}])]
    return plan_group(build_cluster(records).groups[0])


def _live(ips: list[str]) -> dict[int, dict[str, str]]:
    return {npu: {"ipaddr": ip, "netmask": NETMASK} for npu, ip in enumerate(ips)}


def test_rank_table_from_live_facts_equals_the_builders() -> None:
    plan = _plan()
    servers = [
        server_npus(target, _live(device_ips(i))) for i, target in enumerate(plan.context.nodes)
    ]
    table = build_rank_table(servers)
    assert table == rank_table(plan.context)
    assert render_rank_table(table) == render_json(rank_table(plan.context))
    planned = [f for f in plan.node(HOSTS[0]).files if f.path == RANK_TABLE]
    assert planned and planned[0].content == render_rank_table(table)
    assert planned[0].mode == "0640"
    assert render_rank_table(table) == (GOLDEN / "rank_table_file.2x8.json").read_text()
    doc = json.loads(render_rank_table(table))
    assert doc["version"] == "1.0" and doc["server_count"] == "2"
    assert [d["rank_id"] for s in doc["server_list"] for d in s["device"]] == [
        str(r) for r in range(16)
    ]
    values = [v for s in doc["server_list"] for d in s["device"] for v in d.values()]
    assert all(isinstance(v, str) for v in values)


@pytest.mark.parametrize(
    ("live", "message"),
    [
        ({0: {"ipaddr": "10.197.90.1.10"}}, "NPU 0: device IP '10.197.90.1.10' is not an IPv4"),
        ({0: {"ipaddr": "-.-.-.-"}}, "NPU 0: device IP is -.-.-.- (hccn not configured)"),
        ({0: {}}, "NPU 0: no device IP from `hccn_tool -i 0 -ip -g`"),
        ({0: {"ipaddr": "10.197.91.77"}}, "differs from the inventory's npu_device_ips[0]"),
    ],
)
def test_rank_table_refuses_bad_addresses(live: dict[int, Any], message: str) -> None:
    plan = _plan()
    good = _live(device_ips(1))
    servers = [
        server_npus(plan.context.nodes[0], {**_live(device_ips(0)), **live}),
        server_npus(plan.context.nodes[1], good),
    ]
    with pytest.raises(RankTableError) as info:
        build_rank_table(servers)
    assert info.value.problems == [
        p for p in info.value.problems if p.startswith("@fake/atlas-0: NPU 0: ")
    ]
    assert message in str(info.value)


def test_hccn_conf_golden() -> None:
    plan = _plan()
    node = next(n for n in plan_nodes(plan) if n.name == HOSTS[1])
    text = render_hccn_conf(port_specs(node, tls=False))
    assert text == (GOLDEN / "hccn.conf.atlas-1").read_text()


def plan_nodes(plan: Any) -> list[Any]:
    records = [HostRecord(name, (), {**GROUP_DATA, **data}) for name, data in hosts([{}, {}])]
    return list(build_cluster(records).groups[0].nodes)


def test_installed_version() -> None:
    assert installed_version(["Version=24.1.rc3", "ascendhal_version=7.35.23"]) == "24.1.rc3"
    assert installed_version(None) is None
    assert installed_version(["garbage"]) is None


# --- preflight: HCCL TLS must match npu_tls before anything changes -----------------------


def preflight_then_ascend() -> None:
    deploy_preflight()
    deploy_ascend()


def preflight_message(responses: list[dict[str, Any]], **group: Any) -> tuple[FakeRun, str]:
    context._RUNS.clear()  # plans are cached by id(state); ids are reused between tests
    run = FakeRun(hosts(responses), {**GROUP_DATA, **group})
    with pytest.raises(PyinfraError) as error:  # bare @fake nodes fail other checks too
        run.prepare(preflight_then_ascend)
    return run, str(error.value)


def test_preflight_refuses_a_tls_mismatch_before_any_change() -> None:
    # atlas-1's NPUs had HCCL TLS switched on by hand; the group says off
    run, message = preflight_message([configured(device_ips(0)), configured(device_ips(1), tls=1)])
    assert "nothing was changed" in message
    assert (
        "@fake/atlas-1: npu-tls: HCCL TLS switch is 1 on NPU(s) 0, 1, 2, 3, 4, 5, 6, 7, "
        "the group's npu_tls is 0" in message
    )
    assert "EI0006" in message
    assert (
        "Remedy: run `hccn_tool -i N -tls -s enable 0` for N in 0, 1, 2, 3, 4, 5, 6, 7" in message
    )
    assert "@fake/atlas-0: npu-tls" not in message
    for name in HOSTS:
        assert hccn_sets(run.commands(name)) == []
        assert run.changed_ops(name) == []


def test_preflight_tls_passes_without_hccn_tool_and_when_it_matches() -> None:
    # first provisioning: hccn_tool absent (no TLS facts), roles/ascend configures TLS then
    _, message = preflight_message([unconfigured(), unconfigured()], npu_tls=True)
    assert "npu-tls" not in message
    _, message = preflight_message(
        [configured(device_ips(0), tls=1), configured(device_ips(1), tls=1)], npu_tls=True
    )
    assert "npu-tls" not in message


def test_check_npu_tls() -> None:
    on = {"enabled": True, "preconfigured": True, "alarm_days": 60}
    off = {**on, "enabled": False}
    assert check_npu_tls("n", {}, wanted=False) == []
    assert check_npu_tls("n", {0: off, 1: off}, wanted=False) == []
    [finding] = check_npu_tls("n", {0: off, 1: on, 2: {**on, "enabled": None}}, wanted=False)
    assert finding.fatal and finding.check == "npu-tls"
    assert "is 1/unknown on NPU(s) 1, 2" in finding.message
    assert "hccn_tool -i N -tls -s enable 0` for N in 1, 2 on n" in finding.remedy
