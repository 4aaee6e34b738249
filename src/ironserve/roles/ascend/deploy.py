"""roles/ascend: an Atlas A2 (910B) node ready for MindIE.

1. The driver's running user and group (HwHiAiUser); the installers refuse to run without them.
2. The driver, then the firmware, from their vendor ``.run`` installers: the installed version is
   read first (``/usr/local/Ascend/{driver,firmware}/version.info``); nothing is downloaded or
   installed when it is current. Otherwise the installer is downloaded from the artifact source
   (``ascend_installer_url``) and verified on the node against its sha256 in
   ``ascend_checksums`` before it reaches its path (a mismatch is refused, nothing installed),
   checked (``--check`` integrity, ``--version`` the pinned one; a corrupt download is removed
   so the next run fetches it again) and run with ``--full``.
3. Every NPU port through ``hccn_tool`` (ironserve.operations.hccn.port): address and netmask from
   ``npu_device_ips`` / ``npu_netmask``, netdetect and gateway from ``npu_gateway``, TLS from the
   group's ``npu_tls`` (one value cluster-wide). Facts decide; a configured port is a noop.
4. Multi-node MindIE: ``rank_table_file.json`` (0640) where the MindIE builder mounts it
   (``/etc/ironserve/<group>/``), built from the LIVE ``hccn_tool -ip -g`` facts of every node of
   the group, in plan order, and refused unless it equals the plan's table (the inventory's IPs).
   When every port is already configured the table is rendered while preparing (a bad address
   stops the run before any change); when this run configures ports, it is built at execution,
   after the hccn operations have run on every node, from facts read then.
"""

from __future__ import annotations

import shlex
import weakref
from io import StringIO
from typing import Any

from pyinfra import logger
from pyinfra.api.command import FunctionCommand
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.api.operation import operation
from pyinfra.context import host, state
from pyinfra.facts.files import FileContents
from pyinfra.operations import files, server

from ironserve.ascend.ranktable import RankTableError, build_rank_table, render_rank_table
from ironserve.deploy.context import HostPlan, run_state
from ironserve.engines.base import RenderedFile
from ironserve.engines.mindie import rank_table_path
from ironserve.facts.ascend import HccnConf, HccnDeviceIps, HccnTls
from ironserve.operations import download, hccn
from ironserve.roles import FACT_TIMEOUT_S, artifact_sha256, plan_if_vendor, require
from ironserve.roles.ascend.defaults import DEFAULTS, DOWNLOADS
from ironserve.roles.ascend.render import port_specs, server_npus

DRIVER_VERSION_INFO = "/usr/local/Ascend/driver/version.info"
FIRMWARE_VERSION_INFO = "/usr/local/Ascend/firmware/version.info"
DRIVER_RUN = DOWNLOADS["driver"]["file"]
FIRMWARE_RUN = DOWNLOADS["firmware"]["file"]


def installed_version(lines: list[str] | None) -> str | None:
    """``Version=24.1.rc3`` in a version.info file; None when the file or the line is absent."""
    for line in lines or []:
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "version":
            return value.strip() or None
    return None


def _installer(kind: str, run_file: str, version: str, version_info: str) -> None:
    current = installed_version(
        host.get_fact(FileContents, path=version_info, _timeout=FACT_TIMEOUT_S)
    )
    if current == version:
        logger.info(f"{host.name}: Ascend {kind} {version} is installed")
        return
    directory = host.data.get("ascend_download_dir")
    path = f"{directory}/{run_file}"
    url = str(require(host, "ascend_installer_url"))
    sha256 = artifact_sha256(host, "ascend", kind, version)
    files.directory(name=f"Create the Ascend download folder ({kind})", path=directory)
    download.verified(
        name=f"Download the Ascend {kind} installer (sha256 checked)",
        src=url.rstrip("/") + "/" + run_file,
        dest=path,
        artifact=run_file,
        sha256=sha256,
        mode="0755",
    )
    q = shlex.quote  # the path and version are role data: quoted wherever they reach the shell
    corrupt = q(f"{path}: corrupt download, removed; run again")
    server.shell(
        name=f"Check the Ascend {kind} installer",
        commands=[
            f"{q(path)} --check --quiet || {{ rm -f {q(path)}; echo {corrupt} >&2; exit 1; }}",
            f'v="$({q(path)} --version)"; [ "$v" = {q(version)} ] || '
            f'{{ echo {q(path)} is version "$v", expected {q(version)} >&2; exit 1; }}',
        ],
    )
    server.shell(
        name=f"Install the Ascend {kind}", commands=[shlex.join([path, "--full", "--quiet"])]
    )


# Live hccn facts per node, read once while preparing a run (pyinfra 3 does not cache facts).
_LIVE: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any, Any]]] = weakref.WeakKeyDictionary()


def _live_facts(node_host: Any, npu_count: int, fresh: bool = False) -> tuple[Any, Any, Any]:
    cache = _LIVE.setdefault(run_state(state), {})
    if fresh or node_host.name not in cache:
        cache[node_host.name] = (
            dict(node_host.get_fact(HccnDeviceIps, npu_count=npu_count, _timeout=FACT_TIMEOUT_S)),
            dict(node_host.get_fact(HccnTls, npu_count=npu_count, _timeout=FACT_TIMEOUT_S)),
            dict(node_host.get_fact(HccnConf, _timeout=FACT_TIMEOUT_S)),
        )
    return cache[node_host.name]


def _rank_table_from(plan: HostPlan, ips_of: dict[str, Any], planned: RenderedFile) -> str:
    servers = [server_npus(target, ips_of[target.name]) for target in plan.plan.context.nodes]
    content = render_rank_table(build_rank_table(servers))
    if content != planned.content:
        raise RankTableError(
            [f"the rank table from the live facts differs from the plan's {planned.path}"]
        )
    return content


def _write_live_rank_table(state: Any, host: Any, plan: HostPlan, planned: RenderedFile) -> None:
    """At execution, after the hccn operations ran on every node: read, check, write."""
    ips_of = {}
    for target in plan.plan.context.nodes:
        node_host = state.inventory.get_host(target.name)
        ips_of[target.name] = dict(
            node_host.get_fact(
                HccnDeviceIps, npu_count=target.device_count, _timeout=FACT_TIMEOUT_S
            )
        )
    content = _rank_table_from(plan, ips_of, planned)  # raises RankTableError: the op fails
    directory = planned.path.rsplit("/", 1)[0]
    ok, _ = host.run_shell_command(f"mkdir -p {directory} && chmod 0750 {directory}")
    if not ok or not host.put_file(StringIO(content), planned.path):
        raise OperationError(f"could not write {planned.path}")
    ok, _ = host.run_shell_command(f"chmod {planned.mode} {planned.path}")
    if not ok:
        raise OperationError(f"could not chmod {planned.path}")


@operation(is_idempotent=False)
def _rank_table_after_hccn(plan: HostPlan, planned: RenderedFile) -> Any:
    """Write the rank table from the facts read at execution (ports changed in this run)."""
    yield FunctionCommand(_write_live_rank_table, (plan, planned), {})


def _rank_table(plan: HostPlan) -> None:
    path = rank_table_path(plan.plan.context)
    planned = next((f for f in plan.launch.files if f.path == path), None)
    if planned is None:  # single node, or not MindIE: no rank table
        return
    nodes = {n.name: n for n in plan.group.nodes}
    tls = plan.plan.context.npu_tls
    pending = False
    ips_of: dict[str, Any] = {}
    for target in plan.plan.context.nodes:
        node_host = state.inventory.get_host(target.name)
        ips, tls_state, conf = _live_facts(node_host, target.device_count)
        ips_of[target.name] = ips
        specs = port_specs(nodes[target.name], tls)
        pending = pending or bool(hccn.node_commands(specs, ips, tls_state, conf))
    directory = path.rsplit("/", 1)[0]
    files.directory(name="Create the serving group's state folder", path=directory, mode="0750")
    if pending:
        _rank_table_after_hccn(
            name="Write the rank table from the live NPU addresses", plan=plan, planned=planned
        )
        return
    try:
        content = _rank_table_from(plan, ips_of, planned)
    except RankTableError as error:
        raise OperationError(str(error)) from error
    files.put(
        name="Write the rank table from the live NPU addresses",
        src=StringIO(content),
        dest=path,
        mode=planned.mode,
    )


@deploy("Ascend NPU driver, firmware and HCCN", data_defaults=DEFAULTS)
def deploy_ascend() -> None:
    plan = plan_if_vendor(state, host, "ascend")
    if plan is None:
        return
    node = plan.node
    user = host.data.get("ascend_user")
    server.group(name="Create the Ascend driver's group", group=user)
    server.user(
        name="Create the Ascend driver's user",
        user=user,
        group=user,
        home=host.data.get("ascend_user_home"),
        shell="/bin/bash",
        ensure_home=True,
    )
    driver = str(host.data.get("ascend_driver_version"))
    firmware = str(host.data.get("ascend_firmware_version"))
    _installer("driver", DRIVER_RUN.format(version=driver), driver, DRIVER_VERSION_INFO)
    _installer("firmware", FIRMWARE_RUN.format(version=firmware), firmware, FIRMWARE_VERSION_INFO)

    count = node.accelerator.count
    specs = port_specs(node, plan.plan.context.npu_tls)
    if not specs:
        logger.info(f"{host.name}: no npu_device_ips in the inventory; NPU ports left alone")
    for spec in host.loop(specs):
        hccn.port(
            name="Configure an NPU RoCE port",
            npu=spec.npu,
            address=spec.address,
            netmask=spec.netmask,
            gateway=spec.gateway,
            tls=spec.tls,
            npu_count=count,
        )
    _rank_table(plan)
