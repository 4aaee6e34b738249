"""Simulated vendor tools of the lab, compared field for field with captured real outputs.

Each simulator runs as a subprocess (as on a node) against a temporary IRONSERVE_SIM_ROOT
holding a hardware.json from `node_hardware`. Fixtures under tests/fixtures/outputs are
verbatim captures (sources in SOURCES.md); per-machine values (UUIDs, serials, temperatures)
may differ, their shape may not. Fault tests diff the output before and after.
"""

from __future__ import annotations

import difflib
import gzip
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from ironserve.lab.hardware import (
    ACCELERATOR_OF_PROFILE,
    PROFILES,
    accelerator_of,
    node_hardware,
)
from ironserve.lab.packages import (
    ASCEND_DRIVER_RUN,
    ASCEND_FIRMWARE_RUN,
    VASTAI_DRIVER_RUN,
    RepositoryInfo,
    build_repository,
)

SIM = Path(__file__).resolve().parents[2] / "src" / "ironserve" / "lab" / "sim"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"

Run = Callable[..., subprocess.CompletedProcess[str]]


class Node:
    """One simulated node in a temporary root (IRONSERVE_SIM_ROOT)."""

    def __init__(self, root: Path, profile: str) -> None:
        self.root = root
        self.hw = node_hardware(profile, 0, "node-0")
        (root / "etc/ironserve-sim").mkdir(parents=True)
        (root / "etc/ironserve-sim/hardware.json").write_text(json.dumps(self.hw))
        self.env = {**os.environ, "IRONSERVE_SIM_ROOT": str(root)}

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, str(SIM / f"{tool}.py"), *args],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {args} -> {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def out(self, tool: str, *args: str) -> str:
        return self.run(tool, *args).stdout

    def install_nvidia_driver(self) -> None:
        self.run("install_state", "nvidia-driver", "580.95.05")

    def start_fabric_manager(self) -> None:
        # NVML sees a live fabric manager through its pid file; this test process stands in.
        pid = self.root / "var/run/nvidia-fabricmanager/nv-fabricmanager.pid"
        pid.parent.mkdir(parents=True, exist_ok=True)
        pid.write_text(f"{os.getpid()}\n")

    def fault(self, kind: str, target: int | None = None) -> None:
        extra = ["--target", str(target)] if target is not None else []
        self.run("faults", "apply", kind, *extra)

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.root / "var/lib/ironserve-sim/state.json").read_text()
        )
        return data


@pytest.fixture
def make_node(tmp_path: Path) -> Callable[[str], Node]:
    count = iter(range(100))

    def make(profile: str) -> Node:
        root = tmp_path / f"node{next(count)}"
        root.mkdir()
        return Node(root, profile)

    return make


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text(encoding="utf-8").split("\n")[:-1]


# ---- structural comparison ----

# Values of these sets are interchangeable: state words a fixture host happened to be in.
ENUMS = [
    ("Not Active", "Active"),
    ("Enabled", "Disabled"),
    ("Yes", "No"),
    ("On", "Off"),
    ("Pass", "Fail"),
    ("OK", "Alarm"),
    ("In Progress", "Completed"),
    ("UP", "DOWN"),
]
_ENUM_WORDS = {w: grp for grp in ENUMS for w in grp}
_DATE_WORDS = set(
    [
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
        "Sat",
        "Sun",
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    ]
)
_TOKEN = re.compile(r"Not Active|In Progress|\s+|[^\s]+")
_NUMBERISH = re.compile(
    r"[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*|(?<![0-9A-Za-z])[0-9a-f]{4,}(?![0-9A-Za-z])|xx"
)


def line_pattern(line: str) -> str:
    """A regex for lines shaped like `line`: same words, units and punctuation; any numbers.

    Runs of hex digits containing a digit (counts, ids, UUIDs, addresses, temperatures) and
    publisher masks (`xx`) match any such run; the padding next to them is free (column widths
    follow the numbers), other whitespace is literal. Enumerated state words match any word of
    their set; day and month names match any.
    """
    tokens = [m.group(0) for m in _TOKEN.finditer(line)]
    numeric = [bool(_NUMBERISH.search(t)) and not t.isspace() for t in tokens]
    out = []
    for i, tok in enumerate(tokens):
        if tok.isspace():
            near_number = (i > 0 and numeric[i - 1]) or (i + 1 < len(tokens) and numeric[i + 1])
            out.append("[ \\t]*" if near_number else re.escape(tok))
        elif tok in _ENUM_WORDS:
            out.append("(?:" + "|".join(map(re.escape, _ENUM_WORDS[tok])) + ")")
        elif tok in _DATE_WORDS:
            out.append("[A-Z][a-z]{2}")
        else:
            pos, parts = 0, []
            for n in _NUMBERISH.finditer(tok):
                parts.append(re.escape(tok[pos : n.start()]))
                parts.append(r" *-?[0-9A-Fa-f]+ *")
                pos = n.end()
            parts.append(re.escape(tok[pos:]))
            out.append("".join(parts))
    return "".join(out)


def assert_same_shape(fixture: list[str], actual: list[str], *, columns: bool = False) -> None:
    """Line-for-line structural equality; `columns`: table borders at the same offsets."""
    assert len(actual) == len(fixture), f"{len(actual)} lines, fixture has {len(fixture)}"
    for want, got in zip(fixture, actual, strict=False):
        assert re.fullmatch(line_pattern(want), got), f"\nfixture: {want!r}\nsim:     {got!r}"
        if columns:
            assert len(got) == len(want), f"width differs:\n{want!r}\n{got!r}"
            bars = [i for i, c in enumerate(want) if c in "|+"]
            assert [i for i, c in enumerate(got) if c in "|+"] == bars, f"\n{want!r}\n{got!r}"


def diff(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added) between two outputs, as a line diff sees them."""
    b, a = before.split("\n"), after.split("\n")
    removed: list[str] = []
    added: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=b, b=a, autojunk=False).get_opcodes():
        if op != "equal":
            removed += b[i1:i2]
            added += a[j1:j2]
    return removed, added


# ---------------------------------------------------------------- nvidia-smi


def _h100(make_node: Callable[[str], Node]) -> Node:
    node = make_node("h100x8")
    node.install_nvidia_driver()
    node.start_fabric_manager()
    node.run("nvidia_smi", "-pm", "1")  # the fixtures' hosts run with persistence on
    return node


def test_nvidia_smi_list_matches_h100_capture(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    got = node.out("nvidia_smi", "-L").split("\n")[:-1]
    assert_same_shape(fixture_lines("nvidia-smi-L.h100x8.txt")[:8], got)
    assert len({line.split("UUID: ")[1] for line in got}) == 8


def test_nvidia_smi_uuids_are_stable_per_host() -> None:
    a = node_hardware("h100x8", 0, "node-0")["devices"]
    b = node_hardware("h100x8", 3, "node-0")["devices"]
    c = node_hardware("h100x8", 0, "node-1")["devices"]
    assert [d["uuid"] for d in a] == [d["uuid"] for d in b]
    assert {d["uuid"] for d in a}.isdisjoint(d["uuid"] for d in c)


def test_nvidia_smi_default_table_matches_captures(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    got = node.out("nvidia_smi").split("\n")[:-1]
    one_gpu = fixture_lines("nvidia-smi.h100.590.txt")  # driver 590 header, 1 GPU
    eight = fixture_lines("nvidia-smi.h100x8.550.txt")  # 8-GPU body (550 header row differs)
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}       ", got[0])
    assert_same_shape(one_gpu[1:8], got[1:8], columns=True)
    assert_same_shape(eight[8:40], got[8:40], columns=True)
    assert_same_shape(one_gpu[-8:], got[-8:], columns=True)


def test_nvidia_smi_query_all_fields_of_the_590_capture(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    header, values = fixture_lines("nvidia-smi-query-gpu.h100.590.csv")
    fields = [re.sub(r" \[.*\]$", "", h) for h in header.split(", ")]
    out = node.out("nvidia_smi", f"--query-gpu={','.join(fields)}", "--format=csv")
    got_header, *rows = out.split("\n")[:-1]
    assert got_header == header  # same names, same unit labels
    assert len(rows) == 8
    # The capture is a 1-GPU VM: count, host PCIe cap and the PCI address are the VM's.
    vm_only = {"count", "pcie.link.gen.hostmax", "pci.bus", "pci.device"}
    for name, want, got in zip(fields, values.split(", "), rows[0].split(", "), strict=False):
        if name in vm_only:
            continue
        assert re.fullmatch(line_pattern(want), got), f"{name}: fixture {want!r} sim {got!r}"


def test_nvidia_smi_query_nounits_and_noheader(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    header, values = fixture_lines("nvidia-smi-query-gpu-nounits.p100.csv")
    fields = [re.sub(r" \[.*\]$", "", h) for h in header.split(", ")]
    out = node.out("nvidia_smi", f"--query-gpu={','.join(fields)}", "--format=csv,nounits")
    got_header, first = out.split("\n")[:2]
    assert got_header == header  # header keeps units, values drop them
    for name, want, got in zip(
        fields[2:], values.split(", ")[2:], first.split(", ")[2:], strict=False
    ):
        assert re.fullmatch(line_pattern(want), got), f"{name}: {want!r} vs {got!r}"
    (line,) = fixture_lines("nvidia-smi-query-gpu-noheader.h100nvl.csv")
    out = node.out("nvidia_smi", "--query-gpu=name,pci.device_id", "--format=csv,noheader")
    assert out.split("\n")[0] == "NVIDIA H100 80GB HBM3, 0x233010DE"
    assert re.fullmatch(line_pattern(line.split(", ")[1]), out.split("\n")[0].split(", ")[1])


def test_nvidia_smi_unknown_field_and_exit_codes(make_node: Callable[[str], Node]) -> None:
    node = make_node("h100x8")
    no_driver = node.run("nvidia_smi", "-L", check=False)
    assert no_driver.returncode == 9
    assert no_driver.stdout.startswith("NVIDIA-SMI has failed because it couldn't communicate")
    node.install_nvidia_driver()
    bad = node.run("nvidia_smi", "--query-gpu=index,cuda_version", "--format=csv", check=False)
    assert (bad.returncode, bad.stdout) == (
        2,
        'Field "cuda_version" is not a valid field to query.\n\n',
    )
    for i in range(8):
        node.fault("gpu-missing", i)
    none = node.run("nvidia_smi", "-L", check=False)
    assert (none.returncode, none.stdout) == (6, "No devices were found\n")


def test_nvidia_smi_persistence_mode_is_stateful(make_node: Callable[[str], Node]) -> None:
    node = make_node("gpu2")
    node.install_nvidia_driver()
    q = ("--query-gpu=persistence_mode", "--format=csv,noheader")
    assert node.out("nvidia_smi", *q) == "Disabled\nDisabled\n"
    out = node.out("nvidia_smi", "-pm", "1", "-i", "1")
    assert out == "Enabled persistence mode for GPU 00000000:81:00.0.\nAll done.\n"
    assert node.out("nvidia_smi", *q) == "Disabled\nEnabled\n"


def test_nvidia_smi_q_text_matches_h100_capture(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    fixture = fixture_lines("nvidia-smi-q.h100.535.txt")
    got = node.out("nvidia_smi", "-q").split("\n")
    assert_same_shape(fixture, got[: len(fixture)])


def _xml_paths(text: str) -> list[tuple[str, str]]:
    """(tag path, leaf value) in document order; tolerant of the fixture's cut supported_clocks."""
    paths: list[tuple[str, str]] = []
    stack: list[str] = []
    for line in text.split("\n"):
        s = line.strip()
        if m := re.fullmatch(r"<([\w]+) />", s):
            paths.append(("/".join([*stack, m.group(1)]), ""))
        elif m := re.fullmatch(r"<([\w]+)(?: [^>]*)?>(.*)</\1>", s):
            paths.append(("/".join([*stack, m.group(1)]), m.group(2)))
        elif m := re.fullmatch(r"<([\w]+)(?: [^>]*)?>", s):
            stack.append(m.group(1))
        elif m := re.fullmatch(r"</([\w]+)>", s):
            while stack and stack.pop() != m.group(1):
                pass  # closes elements the collector cut (supported_clocks)
    return paths


def test_nvidia_smi_q_xml_matches_v12_capture(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    xml = node.out("nvidia_smi", "-q", "-x")
    ElementTree.fromstring(xml.split("\n", 2)[2])  # well-formed (after the DOCTYPE)
    # The capture's GPU is in MIG mode: its mig_devices list and MIG-hidden remapped rows
    # differ by design, and the collector cut supported_clocks.
    skip = re.compile(r".*/(mig_devices|remapped_rows|supported_clocks)(/|$)|.*processes$")
    fixture_text = (FIXTURES / "nvidia-smi-q-x.a100.535.xml").read_text()
    want = [p for p in _xml_paths(fixture_text) if not skip.match(p[0])]
    got_all = _xml_paths(xml)
    first_gpu_end = next(i for i, p in enumerate(got_all) if p[0].endswith("accounted_processes"))
    got = [p for p in got_all[: first_gpu_end + 1] if not skip.match(p[0])]
    assert [p for p, _ in got] == [p for p, _ in want]

    # Another product (A100 80GB, MIG): values differ; where both are measured, units agree.
    def unit(value: str) -> str | None:
        m = re.fullmatch(r"-?[\d.]+(?: (\S+))?", value)
        return (m.group(1) or "") if m else None

    for (path, w), (_, g) in zip(want, got, strict=False):
        if unit(w) is not None and unit(g) is not None:
            assert unit(w) == unit(g), (path, w, g)
    assert fixture_text.splitlines()[:2] == xml.splitlines()[:2]


def test_nvidia_smi_nvlink_and_topo_match_captures(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    fixture = fixture_lines("nvidia-smi-nvlink-s.h100.txt")
    got = node.out("nvidia_smi", "nvlink", "-s").split("\n")
    assert_same_shape(fixture, got[: len(fixture)])
    assert len(got) - 1 == 8 * 19
    topo = fixture_lines("nvidia-smi-topo-m.h20x8.txt")[1:]  # drop sglang's title line
    got = node.out("nvidia_smi", "topo", "-m").replace("\x1b[4m", "").replace("\x1b[0m", "")
    lines = got.split("\n")[:-1]
    assert len(lines) == len(topo)
    for want, have in zip(topo, lines, strict=False):
        assert re.fullmatch(line_pattern(want.rstrip()), have.rstrip()), (want, have)
        assert want.count("\t") == have.count("\t") or not want.strip()


# ---------------------------------------------------------------- lspci, kernel log


def test_lspci_formats(make_node: Callable[[str], Node]) -> None:
    node = make_node("h100x8")
    lines = node.out("lspci").split("\n")[:-1]
    assert "19:00.0 3D controller: NVIDIA Corporation GH100[H100 SXM5 80GB] (rev a1)" in lines
    assert "05:00.0 Bridge: NVIDIA Corporation Device 22a3 (rev a1)" in lines
    assert (
        "18:00.0 Infiniband controller: Mellanox Technologies MT2910 Family [ConnectX-7]" in lines
    )
    nn = node.out("lspci", "-nn", "-d", "10de:").split("\n")[:-1]
    assert len(nn) == 12
    assert nn[4] == (
        "19:00.0 3D controller [0302]: "
        "NVIDIA Corporation GH100[H100 SXM5 80GB] [10de:2330] (rev a1)"
    )
    assert nn[0] == "05:00.0 Bridge [0680]: NVIDIA Corporation Device [10de:22a3] (rev a1)"
    va = make_node("va16")
    assert len(va.out("lspci", "-d", ":0100").split("\n")[:-1]) == 32  # the vendor README's check
    assert va.out("lspci", "-nn").split("\n")[0] == (
        "1b:00.0 Processing accelerators [1200]: Device [1ec6:0100] (rev 01)"
    )
    npu = make_node("ascend910bx8")
    assert (
        "c1:00.0 Processing accelerators: Huawei Technologies Co., Ltd. Device d802 (rev 20)"
        in (npu.out("lspci").split("\n"))
    )


# ---------------------------------------------------------------- faults (NVIDIA)


def test_fault_gpu_missing(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    before = {t: node.out(t, *a) for t, a in (("nvidia_smi", ("-L",)), ("lspci", ()))}
    node.fault("gpu-missing", 7)
    removed, added = diff(before["nvidia_smi"], node.out("nvidia_smi", "-L"))
    assert (len(removed), added) == (1, []) and removed[0].startswith("GPU 7: ")
    removed, added = diff(before["lspci"], node.out("lspci"))
    assert (removed, added) == (
        ["db:00.0 3D controller: NVIDIA Corporation GH100[H100 SXM5 80GB] (rev a1)"],
        [],
    )
    q = node.out("nvidia_smi", "--query-gpu=count", "--format=csv,noheader")
    assert q == "7\n" * 7


def test_fault_xid79(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    lspci, listing, kern = node.out("lspci"), node.out("nvidia_smi", "-L"), node.out("kernlog")
    node.fault("xid-79", 2)
    removed, added = diff(lspci, node.out("lspci"))
    assert [r.replace("(rev a1)", "(rev ff)") for r in removed] == added and len(added) == 1
    after = node.run("nvidia_smi", "-L", check=False)
    assert after.returncode == 15
    removed, added = diff(listing, after.stdout)
    assert removed[0].startswith("GPU 2: ") and len(removed) == 1
    assert added == [
        "Unable to determine the device handle for GPU0000:4C:00.0: GPU is lost.  "
        "Reboot the system to recover this GPU"
    ]
    removed, added = diff(kern, node.out("kernlog"))
    assert removed == []
    lines = [a for a in added if a]
    assert_same_shape(fixture_lines("dmesg-xid79.txt")[:5], lines)
    assert (
        "NVRM: Xid (PCI:0000:4c:00): 79, pid='<unknown>', name=<unknown>, "
        "GPU has fallen off the bus." in lines[2]
    )


def test_fault_ecc_uncorrectable(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    q = ("--query-gpu=index,ecc.errors.uncorrected.volatile.total", "--format=csv,noheader")
    table, query, text = (
        node.out("nvidia_smi"),
        node.out("nvidia_smi", *q),
        node.out("nvidia_smi", "-q"),
    )
    node.fault("ecc-uncorrectable", 1)
    assert diff(query, node.out("nvidia_smi", *q)) == (["1, 0"], ["1, 2"])
    removed, added = diff(table.split("\n", 1)[1], node.out("nvidia_smi").split("\n", 1)[1])
    assert len(removed) == len(added) == 1 and removed[0].rstrip("0 |") == added[0].rstrip("2 |")
    assert node.run("dcgmi", "diag", "-r", "2", check=False).returncode != 0
    after = node.out("nvidia_smi", "-q").split("\n")
    changed = [
        i
        for i, (a, b) in enumerate(zip(text.split("\n"), after, strict=False))
        if a != b and "Timestamp" not in a
    ]
    assert len(changed) == 2
    assert all(re.fullmatch(r" +DRAM Uncorrectable +: 2", after[i]) for i in changed)


def test_fault_row_remap_pending(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    q = ("--query-gpu=remapped_rows.pending,remapped_rows.uncorrectable", "--format=csv,noheader")
    before = node.out("nvidia_smi", *q)
    node.fault("row-remap-pending", 0)
    assert diff(before, node.out("nvidia_smi", *q)) == (["No, 0"], ["Yes, 1"])
    text = node.out("nvidia_smi", "-q")
    assert "        Pending                           : Yes" in text.split("\n")
    report = node.run("dcgmi", "diag", "-r", "1", check=False).stdout
    assert (
        "| software                  | Fail                                           |" in report
    )


def test_fault_fabricmanager_down(make_node: Callable[[str], Node]) -> None:
    node = _h100(make_node)
    q = ("--query-gpu=fabric.state,fabric.status", "--format=csv,noheader")
    assert node.out("nvidia_smi", *q) == "Completed, Success\n" * 8
    text = node.out("nvidia_smi", "-q")
    node.fault("fabricmanager-down")
    assert node.out("nvidia_smi", *q) == "In Progress, [N/A]\n" * 8
    after = node.out("nvidia_smi", "-q")
    changed = [
        b
        for a, b in zip(text.split("\n"), after.split("\n"), strict=False)
        if a != b and "Timestamp" not in a
    ]
    assert sorted(set(changed)) == [
        "        State                             : In Progress",
        "        Status                            : N/A",
    ]
    assert len(changed) == 16
    gpu2 = make_node("gpu2")  # no NVSwitch: fabric is not applicable
    gpu2.install_nvidia_driver()
    assert gpu2.out("nvidia_smi", *q) == "[N/A], [N/A]\n" * 2


# ---------------------------------------------------------------- InfiniBand


def test_ibstat_matches_capture_and_port_down(make_node: Callable[[str], Node]) -> None:
    node = make_node("h100x8")
    fixture = fixture_lines("ibstat.h100.some-down.txt")
    got = node.out("ibstat").split("\n")[:-1]
    assert len(got) == 8 * 17
    assert_same_shape(fixture[:17], got[:17])
    assert node.out("ibstat", "mlx5_3").split("\n")[0] == "CA 'mlx5_3'"
    before = node.out("ibstat")
    node.fault("ib-port-down", 5)
    removed, added = diff(before, node.out("ibstat"))
    assert added == ["\t\tState: Down", "\t\tPhysical state: Disabled"]
    assert removed == ["\t\tState: Active", "\t\tPhysical state: LinkUp"]
    down_block = fixture[fixture.index("\t\tState: Down") : fixture.index("\t\tState: Down") + 2]
    assert added == down_block


def test_ibstatus_and_ibv_devinfo_match_captures(make_node: Callable[[str], Node]) -> None:
    a100 = make_node("a100-40gx8")  # HDR, like the ibstatus capture
    fixture = fixture_lines("ibstatus.a100.txt")
    got = a100.out("ibstat", "ibstatus").split("\n")
    assert_same_shape(fixture[:8], got[:8])
    assert got[8] == ""
    h100 = make_node("h100x8")
    fixture = fixture_lines("ibv_devinfo.h100.txt")[1:]  # drop the poster's prompt line
    got = h100.out("ibstat", "ibv_devinfo").split("\n")
    board = re.compile(r"\tboard_id:\t\t\t\S+")  # Dell OEM id in the capture, Mellanox's here
    for want, have in zip(fixture[:18], got[:18], strict=False):
        if board.fullmatch(want):
            assert board.fullmatch(have)
        else:
            assert re.fullmatch(line_pattern(want), have), (want, have)
    h100.fault("ib-port-down", 0)
    assert "\t\t\tstate:\t\t\tPORT_DOWN (1)" in h100.out("ibstat", "ibv_devinfo").split("\n")
    status = h100.out("ibstat", "ibstatus")
    assert "        state:           1: DOWN" in status and "phys state:      3: Disabled" in status


# ---------------------------------------------------------------- Ascend


def test_npu_smi_info_matches_captures(make_node: Callable[[str], Node]) -> None:
    node = make_node("ascend910bx8")
    got = node.out("npu_smi", "info").split("\n")[:-1]
    rc3 = fixture_lines("npu-smi-info.910b4.24.1.rc3.txt")
    b2 = fixture_lines("npu-smi-info.910b2.23.0.7.txt")
    assert got[:6] == rc3[:6]  # header of the same driver version, verbatim
    assert_same_shape(b2[6:], got[6:], columns=True)  # 910B2 64 GB rows and process block
    health = node.out("npu_smi", "info", "-t", "health", "-i", "3").split("\n")[:-1]
    assert health == fixture_lines("npu-smi-health.txt")


def test_fault_npu_alarm(make_node: Callable[[str], Node]) -> None:
    node = make_node("ascend910bx8")
    before = node.out("npu_smi", "info")
    node.fault("npu-alarm", 4)
    removed, added = diff(before, node.out("npu_smi", "info"))
    assert len(removed) == len(added) == 1
    assert removed[0].replace("| OK     ", "| Alarm  ") == added[0]
    health = node.out("npu_smi", "info", "-t", "health", "-i", "4")
    assert health.startswith(
        "Health Status                  : Alarm\nError Code                     : 80E"
    )


def test_hccn_tool_is_stateful_and_matches_captures(make_node: Callable[[str], Node]) -> None:
    node = make_node("ascend910bx8")
    for dev in range(8):
        node.run(
            "hccn_tool",
            "-i",
            str(dev),
            "-ip",
            "-s",
            "address",
            f"10.20.0.{10 + dev}",
            "netmask",
            "255.255.255.0",
        )
        node.run("hccn_tool", "-i", str(dev), "-netdetect", "-s", "address", "10.20.0.1")
        node.run("hccn_tool", "-i", str(dev), "-gateway", "-s", "gateway", "10.20.0.1")
    assert_same_shape(
        fixture_lines("hccn-ip-g.txt"),
        node.out("hccn_tool", "-i", "3", "-ip", "-g").split("\n")[:-1],
    )
    assert (
        node.out("hccn_tool", "-i", "3", "-ip", "-g")
        == "ipaddr:10.20.0.13\nnetmask:255.255.255.0\n"
    )
    assert node.out("hccn_tool", "-i", "3", "-link", "-g").split("\n")[:-1] == fixture_lines(
        "hccn-link-g.txt"
    )
    assert node.out("hccn_tool", "-i", "3", "-net_health", "-g").split("\n")[:-1] == fixture_lines(
        "hccn-net-health-success.txt"
    )
    assert node.out("hccn_tool", "-i", "0", "-tls", "-g").split("\n")[:-1] == fixture_lines(
        "hccn-tls-g.txt"
    )
    gateways = [
        node.out("hccn_tool", "-i", str(d), "-gateway", "-g").rstrip("\n") for d in range(8)
    ]
    assert_same_shape(fixture_lines("hccn-gateway-g.txt"), gateways)
    ping = node.run("hccn_tool", "-i", "3", "-ping", "-g", "address", "10.20.0.99")
    assert_same_shape(fixture_lines("hccn-ping.txt")[1:], ping.stdout.split("\n")[:-1])
    far = node.run("hccn_tool", "-i", "3", "-ping", "-g", "address", "10.99.0.1", check=False)
    assert far.returncode != 0 and "0 received, 100.00% packet loss" in far.stdout
    conf = (node.root / "etc/hccn.conf").read_text().split("\n")[:-1]
    assert len(conf) == 8 * 4
    fixture = [line for line in fixture_lines("hccn.conf.txt")[1:] if line != "..."]
    by_key = {line.split("_")[0] + line.split("=")[0][-2:]: line for line in fixture}
    for line in conf:
        key = line.split("_")[0] + ("_0" if line.split("=")[0].endswith("_0") else "_7")
        if key in by_key:
            assert re.fullmatch(line_pattern(by_key[key]), line)
    assert conf[:4] == [
        "address_0=10.20.0.10",
        "netmask_0=255.255.255.0",
        "netdetect_0=10.20.0.1",
        "gateway_0=10.20.0.1",
    ]


def test_fault_npu_link_down_and_tls(make_node: Callable[[str], Node]) -> None:
    node = make_node("ascend910bx8")
    node.run(
        "hccn_tool", "-i", "2", "-ip", "-s", "address", "10.20.0.12", "netmask", "255.255.255.0"
    )
    node.run("hccn_tool", "-i", "2", "-netdetect", "-s", "address", "10.20.0.1")
    node.fault("npu-link-down", 2)
    assert node.out("hccn_tool", "-i", "2", "-link", "-g") == "link status: DOWN\n"
    assert node.out("hccn_tool", "-i", "1", "-link", "-g") == "link status: UP\n"
    assert node.out("hccn_tool", "-i", "2", "-net_health", "-g") == "net health status: Fault\n"
    assert node.run(
        "hccn_tool", "-i", "2", "-ping", "-g", "address", "10.20.0.13", check=False
    ).returncode
    node.run("faults", "heal")
    node.fault("npu-tls-mismatch")
    assert "tls switch[1]" in node.out("hccn_tool", "-i", "5", "-tls", "-g")
    assert "tls_enable_5=1" in (node.root / "etc/hccn.conf").read_text()
    node.run("hccn_tool", "-i", "5", "-tls", "-s", "enable", "0")  # the real remedy works
    assert "tls switch[0]" in node.out("hccn_tool", "-i", "5", "-tls", "-g")


def test_faults_are_pure_functions() -> None:
    from ironserve.lab.sim import faults, state

    s0 = state.default_state()
    s1 = faults.apply("xid-79", s0, target=3, at=12.5)
    assert s0["faults"] == [] and s1["faults"] == [{"kind": "xid-79", "target": 3, "at": 12.5}]
    assert faults.apply("xid-79", s1, target=3)["faults"] == [
        {"kind": "xid-79", "target": 3, "at": 0.0}
    ]
    assert faults.heal(s1)["faults"] == []
    with pytest.raises(ValueError):
        faults.apply("disk-full", s0)


# ---------------------------------------------------------------- dcgmi, nvidia-ctk, vasmi


def test_dcgmi_diag_matches_dcgm4_capture(make_node: Callable[[str], Node]) -> None:
    node = make_node("gpu2")
    node.install_nvidia_driver()
    fixture = fixture_lines("dcgmi-diag-r2.a10g.txt")[1:]  # drop the command line
    got = node.out("dcgmi", "diag", "-r", "2", "-i", "0").split("\n")[:-1]
    assert_same_shape(fixture, got, columns=True)
    doc = node.out("dcgmi", "diag", "-r", "3", "-j")
    parsed = json.loads(doc)
    tests = parsed["DCGM Diagnostic"]["test_categories"][1]["tests"]
    assert tests[0]["name"] == "memory" and tests[0]["test_summary"]["status"] == "Pass"
    assert '\t"DCGM Diagnostic" : \n\t{' in doc  # jsoncpp styled writer, as in the captures


def test_nvidia_ctk_configures_daemon_json(make_node: Callable[[str], Node]) -> None:
    node = make_node("gpu2")
    done = node.run("nvidia_ctk", "runtime", "configure", "--runtime=docker")
    assert "Config file does not exist; using empty config" in done.stderr
    assert "Wrote updated config to /etc/docker/daemon.json" in done.stderr
    written = (node.root / "etc/docker/daemon.json").read_text()
    assert written + "\n" == (FIXTURES / "daemon.json.plain.json").read_text()
    daemon = node.root / "etc/docker/daemon.json"
    daemon.write_text('{"insecure-registries": ["blabla"]}')
    node.run("nvidia_ctk", "runtime", "configure", "--runtime=docker", "--set-as-default")
    want = (FIXTURES / "daemon.json.default-runtime.json").read_text()
    # Toolkit 1.17 writes the runtime by name; the capture's older toolkit wrote its full path.
    assert daemon.read_text().strip() == want.strip().replace(
        "/usr/bin/nvidia-container-runtime", "nvidia-container-runtime"
    )


def test_vasmi_needs_driver(make_node: Callable[[str], Node]) -> None:
    node = make_node("va16")
    assert node.run("vasmi", "list", check=False).returncode == 1
    node.run("install_state", "vastai-driver", "3.3.0")
    lines = node.out("vasmi", "list").split("\n")[:-1]
    assert len(lines) == 2 + 32
    assert (node.root / "dev/vacc31").exists()


# ---------------------------------------------------------------- packages and installers


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> RepositoryInfo:
    return build_repository(tmp_path_factory.mktemp("repo"))


def _deb_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def _deb_files(deb: Path) -> dict[str, str]:
    out = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    return {
        line.split()[-1].lstrip("."): line.split()[0]
        for line in out.splitlines()
        if not line.endswith("/")
    }


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_packages_have_real_names_versions_and_tools(repo: RepositoryInfo) -> None:
    expect = {
        "nvidia-driver-580-server-open": None,
        "nvidia-driver-580-server": None,
        "nvidia-utils-580-server": "/usr/bin/nvidia-smi",
        "cuda-toolkit-12-8": "/usr/local/cuda-12.8/bin/nvcc",
        "nvidia-fabricmanager-580": "/lib/systemd/system/nvidia-fabricmanager.service",
        "nvidia-container-toolkit": "/usr/bin/nvidia-ctk",
        "datacenter-gpu-manager-4-cuda12": "/usr/bin/dcgmi",
        "infiniband-diags": "/usr/sbin/ibstat",
        "ibverbs-utils": "/usr/bin/ibv_devinfo",
        "rdma-core": None,
        "pciutils": "/usr/bin/lspci",
        "ironserve-sim-base": "/usr/sbin/ironserve-sim-fault",
    }
    for name, tool in expect.items():
        deb = repo.debs[name]
        assert _deb_field(deb, "Package") == name
        assert _deb_field(deb, "Version") == repo.packages[name]
        if tool:
            assert _deb_files(deb)[tool].startswith("-rw") or _deb_files(deb)[tool].startswith(
                "-rwx"
            )
    driver = repo.packages["nvidia-driver-580-server-open"].split("-")[0]
    assert repo.packages["nvidia-fabricmanager-580"] == f"{driver}-1"
    assert _deb_files(repo.debs["nvidia-utils-580-server"])["/usr/bin/nvidia-smi"] == "-rwxr-xr-x"
    index = (repo.path / "Packages").read_text()
    assert all(f"Package: {n}\n" in index for n in expect)
    assert "SHA256:" in (repo.path / "Release").read_text()
    assert gzip.decompress((repo.path / "Packages.gz").read_bytes()).decode() == index
    assert build_repository(repo.path).rebuilt is False  # idempotent


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_installed_driver_packages_run(repo: RepositoryInfo, tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name in (
        "ironserve-sim-base",
        "nvidia-utils-580-server",
        "nvidia-driver-580-server-open",
        "cuda-toolkit-12-8",
    ):
        subprocess.run(["dpkg-deb", "-x", str(repo.debs[name]), str(root)], check=True)
    (root / "etc/ironserve-sim").mkdir(parents=True)
    (root / "etc/ironserve-sim/hardware.json").write_text(
        json.dumps(node_hardware("gpu2", 0, "n0"))
    )
    env = {
        **os.environ,
        "IRONSERVE_SIM_ROOT": str(root),
        "IRONSERVE_SIM_LIB": str(root / "usr/lib/ironserve-sim"),
    }
    smi = [sys.executable, str(root / "usr/bin/nvidia-smi"), "-L"]
    assert subprocess.run(smi, env=env, capture_output=True).returncode == 9  # module not loaded
    postinst = subprocess.run(
        ["dpkg-deb", "-I", str(repo.debs["nvidia-driver-580-server-open"]), "postinst"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    subprocess.run(["sh", "-c", postinst], env=env, check=True)
    listing = subprocess.run(smi, env=env, capture_output=True, text=True, check=True).stdout
    assert listing.startswith("GPU 0: NVIDIA L40S (UUID: GPU-")
    nvcc = subprocess.run(
        [str(root / "usr/local/cuda-12.8/bin/nvcc"), "--version"], capture_output=True, text=True
    )
    assert "Cuda compilation tools, release 12.8, V12.8.93" in nvcc.stdout


def test_ascend_run_installers(repo: RepositoryInfo, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/ironserve-sim").mkdir(parents=True)
    (root / "etc/ironserve-sim/hardware.json").write_text(
        json.dumps(node_hardware("ascend910bx8", 0, "n0"))
    )
    env = {**os.environ, "IRONSERVE_SIM_ROOT": str(root)}
    driver = str(repo.run_files[ASCEND_DRIVER_RUN])
    firmware = str(repo.run_files[ASCEND_FIRMWARE_RUN])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", *args], env=env, capture_output=True, text=True)

    check = run(driver, "--check")
    assert check.returncode == 0 and "checksums are OK" in check.stdout
    assert run(driver, "--version").stdout == "24.1.rc3\n"
    assert run(firmware, "--full").returncode == 1  # driver first
    no_user = run(driver, "--full")
    assert no_user.returncode == 1 and "HwHiAiUser" in no_user.stderr
    assert not (root / "usr/local/bin/npu-smi").exists()
    (root / "etc/passwd").write_text("HwHiAiUser:x:1000:1000::/home/HwHiAiUser:/bin/bash\n")
    assert run(driver, "--full", "--quiet").returncode == 0
    assert (root / "usr/local/Ascend/driver/version.info").read_text() == "Version=24.1.rc3\n"
    hccn = root / "usr/local/Ascend/driver/tools/hccn_tool"
    assert stat.S_IMODE(hccn.stat().st_mode) == 0o555
    env["IRONSERVE_SIM_LIB"] = str(root / "usr/lib/ironserve-sim")
    info = subprocess.run(
        [sys.executable, str(root / "usr/local/bin/npu-smi"), "info"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "| npu-smi 24.1.rc3 " in info.stdout
    assert run(firmware, "--full").returncode == 0
    assert (root / "usr/local/Ascend/firmware/version.info").read_text() == "Version=7.5.0.3.220\n"
    corrupt = tmp_path / "bad.run"
    corrupt.write_bytes(Path(driver).read_bytes()[:-10] + b"0123456789")
    assert run(str(corrupt), "--check").returncode == 1


def test_vastai_installer_refuses_iommu(repo: RepositoryInfo, tmp_path: Path) -> None:
    installer = str(repo.run_files[VASTAI_DRIVER_RUN])
    for profile, ok in (("va16-iommu", False), ("va16", True)):
        root = tmp_path / profile
        (root / "etc/ironserve-sim").mkdir(parents=True)
        (root / "etc/ironserve-sim/hardware.json").write_text(
            json.dumps(node_hardware(profile, 0, "n0"))
        )
        env = {**os.environ, "IRONSERVE_SIM_ROOT": str(root)}
        done = subprocess.run(
            ["bash", installer, "install", "--setkernelhook"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert (done.returncode == 0) == ok, done.stderr
        assert (root / "dev/vacc31").exists() == ok
        if not ok:
            assert done.stderr == "Error! IOMMU is enable, please close IOMMU first\n"
            env["IRONSERVE_SIM_LIB"] = str(root / "usr/lib/ironserve-sim")
            kern = subprocess.run(
                [sys.executable, str(SIM / "kernlog.py")], env=env, capture_output=True, text=True
            )
            assert "iommu is enable" in kern.stdout  # what the vendor's compose check greps


def test_accelerator_of_profile_names_catalog_ids() -> None:
    from ironserve.catalog.accelerators import ACCELERATORS

    for profile in PROFILES:
        for index in range(2):
            accel, count = accelerator_of(profile, index)
            assert (
                accel in ACCELERATORS
                and count == node_hardware(profile, index, "x")["accelerator_count"]
            )
    assert ACCELERATOR_OF_PROFILE["h100x8"] == ("h100-80g", 8)
    assert accelerator_of("mixed", 1) == ("a100-40g", 8)
    h = node_hardware("h100x8", 0, "x")
    assert ACCELERATORS["h100-80g"].product == h["devices"][0]["name"]
    assert ACCELERATORS["h100-80g"].memory_bytes == h["devices"][0]["memory_mib"] * 1024**2
