"""Turn host records (flat pyinfra data) into a validated Cluster, or every problem found.

Runs before any connection: nothing here reads a node.
"""

from __future__ import annotations

import stat
from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ValidationError

from ironserve.catalog.accelerators import ACCELERATORS, Accelerator
from ironserve.catalog.engines import (
    ENGINES,
    EngineKind,
    check_flags,
    default_engine,
    flag_table,
)
from ironserve.catalog.format_support import runnable_formats
from ironserve.catalog.models import ModelSpec, UnknownModel, get_model
from ironserve.config.downloads import download_problems
from ironserve.config.dynamo_checks import dynamo_problems
from ironserve.config.engine_args import extra_args_problems
from ironserve.config.inventory import HostRecord
from ironserve.config.mpi_world import one_fabric_problems
from ironserve.config.ports import engine_internal_ports
from ironserve.config.role_keys import role_data_problems, role_keys, roles_data
from ironserve.config.schema import (
    DEFAULT_BACKEND_PORT,
    RENAMED_KEYS,
    SECRET_KEYS,
    SECTIONS,
    Cluster,
    EngineSettings,
    Node,
    ServingGroup,
    known_keys,
)
from ironserve.config.values import host_name, problem_text
from ironserve.errors import InputError, Problem, did_you_mean
from ironserve.plan.sizing import fallback_formats
from ironserve.rules.disk import DISK_MARGIN

# Keys pyinfra itself reads: connector settings and global operation arguments.
_PYINFRA_PREFIXES = (
    "ssh_",
    "docker_",
    "podman_",
    "chroot_",
    "vagrant_",
    "terraform_",
    "winrm_",
    "fake_",
)
_PYINFRA_KEYS = {"fake_responses", "name"}

_SHARED = [prefix for prefix, (_, shared) in SECTIONS.items() if shared]


def _is_pyinfra_key(key: str) -> bool:
    return key.startswith("_") or key.startswith(_PYINFRA_PREFIXES) or key in _PYINFRA_KEYS


def _section(
    host: str, data: dict[str, Any], prefix: str, model: type[BaseModel], problems: list[Problem]
) -> Any:
    # Unknown keys under the prefix were reported by _check_keys (with a suggestion, and without
    # echoing a value that may be a secret); validate the known ones only.
    fields = model.model_fields
    values = {
        k[len(prefix) :]: v
        for k, v in data.items()
        if k.startswith(prefix) and k[len(prefix) :] in fields
    }
    try:
        return model(**values)
    except ValidationError as error:
        for item in error.errors():
            key = prefix + str(item["loc"][0]) if item["loc"] else prefix.rstrip("_")
            problems.append(Problem(host, key, problem_text(item, values)))
        return None


def _check_keys(record: HostRecord, problems: list[Problem], roles: frozenset[str]) -> None:
    known = known_keys() | roles
    for key in record.data:
        if _is_pyinfra_key(key) or key in known:
            continue
        if key in SECRET_KEYS:
            problems.append(
                Problem(
                    record.name,
                    key,
                    f"secrets do not belong in inventory data; write it to a 0600 file and set "
                    f"{SECRET_KEYS[key]} to its path",
                )
            )
            continue
        problems.append(Problem(record.name, key, f"unknown key{did_you_mean(key, known)}"))


def _disk_margin(record: HostRecord, problems: list[Problem]) -> float:
    """The node's ``preflight_disk_margin`` (typed as roles/preflight reads it): the Plan states
    each node's disk need with it."""
    # Imported here: the roles import this module (through the Plan).
    from ironserve.roles.preflight.defaults import PreflightData

    key = "preflight_disk_margin"
    try:  # this key alone: the role's other keys are the role's to judge
        margin = PreflightData.from_data(
            record.name, {key: record.data.get(key)}
        ).preflight_disk_margin
    except InputError as error:
        problems += error.problems
        return DISK_MARGIN
    if margin <= 0:
        problems.append(Problem(record.name, key, f"must be > 0 (got {margin!r})"))
        return DISK_MARGIN
    return margin


def _name_problems(record: HostRecord) -> list[Problem]:
    """The host's own name: it names files, containers' labels and Prometheus targets."""
    try:
        host_name(record.name)
    except ValueError as error:
        return [Problem(repr(record.name), "host name", str(error))]
    return []


def _port_problems(record: HostRecord) -> list[Problem]:
    """``engine_port`` (and ``serving_backend_port``, the engine's own behind the gateway) is
    none of the engines' internal ports, nor a port a role enabled on the same node listens on
    (ranges and types are the schema's)."""
    # Imported here: the roles import this loader (through the Plan).
    from ironserve.roles.image_cache.defaults import ImageCacheData
    from ironserve.roles.monitoring.defaults import MonitoringData
    from ironserve.roles.webui.defaults import WebuiData

    taken = dict(engine_internal_ports())
    data = record.data
    if data.get("image_cache_enabled") is True:
        port = data.get("image_cache_port", ImageCacheData().image_cache_port)
        taken.setdefault(port, "image cache")
    if data.get("webui_enabled") is True:
        taken.setdefault(data.get("webui_port", WebuiData().webui_port), "Open WebUI")
    if data.get("monitoring_enabled") is True:
        defaults = MonitoringData().model_dump()
        for key, value in defaults.items():
            if key.startswith("monitoring_") and key.endswith("_port"):
                what = key.removeprefix("monitoring_").removesuffix("_port").replace("_", " ")
                taken.setdefault(data.get(key, value), f"monitoring ({what})")
    backend = data.get("serving_backend_port", DEFAULT_BACKEND_PORT)
    problems = []
    for key, port in (("engine_port", data.get("engine_port")), ("serving_backend_port", backend)):
        if isinstance(port, int) and not isinstance(port, bool) and port in taken:
            problems.append(
                Problem(
                    record.name,
                    key,
                    f"{port} is the {taken[port]} port on the node; pick another port",
                )
            )
    return problems


def _node(record: HostRecord, problems: list[Problem]) -> tuple[Node | None, dict[str, Any]]:
    """The node's own settings, and its shared settings (to compare within the group)."""
    data = record.data
    before = len(problems)
    parts = {
        prefix: _section(record.name, data, prefix, model, problems)
        for prefix, (model, _) in SECTIONS.items()
    }
    margin = _disk_margin(record, problems)
    if len(problems) > before:
        return None, {}
    node = Node(
        name=record.name,
        node=parts["node_"],
        accelerator=parts["accelerator_"],
        network=parts["network_"],
        npu=parts["npu_"],
        disk_margin=margin,
    )
    return node, {prefix: parts[prefix] for prefix in _SHARED}


def _check_shared_agree(
    group: str, members: list[tuple[Node, dict[str, Any]]], problems: list[Problem]
) -> None:
    first_node, first = members[0]
    for node, shared in members[1:]:
        for prefix in _SHARED:
            mine, theirs = shared[prefix].model_dump(), first[prefix].model_dump()
            for name in mine:
                if mine[name] != theirs[name]:
                    problems.append(
                        Problem(
                            node.name,
                            prefix + name,
                            f"must be the same on every node of serving group {group!r}: "
                            f"{mine[name]!r} here, {theirs[name]!r} on {first_node.name}",
                        )
                    )


def _image_cache_settings(record: HostRecord) -> dict[str, Any]:
    """The node's ``image_cache_*`` values (defaults filled): the head's count for its group."""
    # Imported here: the roles import this loader (through the Plan).
    from ironserve.roles.image_cache.defaults import ImageCacheData

    return {k: record.data.get(k, v) for k, v in ImageCacheData().model_dump().items()}


def _check_cache_agree(
    group: str, settings: list[tuple[str, dict[str, Any]]], problems: list[Problem]
) -> None:
    """The group's image cache is one (on its head): its settings are the same on every node."""
    first_name, first = settings[0]
    for name, mine in settings[1:]:
        for key, value in mine.items():
            if value != first[key]:
                problems.append(
                    Problem(
                        name,
                        key,
                        f"must be the same on every node of serving group {group!r}: "
                        f"{value!r} here, {first[key]!r} on {first_name}",
                    )
                )


def _engine_for_vendor(engine: EngineSettings, head: Node) -> EngineSettings:
    """No ``engine_kind`` given: the engine the accelerator's vendor ships (MindIE on Ascend,
    vllm_vacc on Vastai, vLLM on NVIDIA)."""
    accel = ACCELERATORS.get(head.accelerator.kind)
    if "kind" in engine.model_fields_set or accel is None:
        return engine
    return engine.model_copy(update={"kind": default_engine(accel.vendor)})


def _check_group(group: ServingGroup, problems: list[Problem]) -> None:
    nodes = group.nodes
    heads = [n for n in nodes if n.node.role == "head"]
    where = group.head.name
    if len(heads) != 1:
        names = ", ".join(n.name for n in heads) or "none"
        problems.append(
            Problem(
                where,
                "node_role",
                f"serving group {group.name!r} needs exactly one head, has {len(heads)} ({names})",
            )
        )
    kinds = {(n.accelerator.kind, n.accelerator.count) for n in nodes}
    if len(kinds) > 1:
        for n in nodes[1:]:
            if (n.accelerator.kind, n.accelerator.count) != (
                nodes[0].accelerator.kind,
                nodes[0].accelerator.count,
            ):
                problems.append(
                    Problem(
                        n.name,
                        "accelerator_kind",
                        f"{n.accelerator.count} x {n.accelerator.kind} differs from "
                        f"{nodes[0].accelerator.count} x {nodes[0].accelerator.kind} on "
                        f"{nodes[0].name}: a serving group needs identical nodes",
                    )
                )
    accel_id = nodes[0].accelerator.kind
    accel = ACCELERATORS.get(accel_id)
    for n in nodes:
        if n.accelerator.kind not in ACCELERATORS:
            problems.append(
                Problem(
                    n.name,
                    "accelerator_kind",
                    f"unknown accelerator {n.accelerator.kind!r}"
                    f"{did_you_mean(n.accelerator.kind, set(ACCELERATORS))}",
                )
            )
    engine = ENGINES[group.engine.kind]
    if accel is not None and accel.vendor not in engine.vendors:
        suited = sorted(e.kind.value for e in ENGINES.values() if accel.vendor in e.vendors)
        problems.append(
            Problem(
                where,
                "engine_kind",
                f"{engine.kind.value} does not run on {accel.vendor} accelerators ({accel_id}); "
                f"use {' or '.join(suited)}",
            )
        )
    if len(nodes) > 1:
        for n in nodes:
            if not n.network.socket_ifname:
                problems.append(
                    Problem(
                        n.name,
                        "network_socket_ifname",
                        "required for a multi-node group: the NIC that GLOO/NCCL/TP (HCCL) "
                        "sockets use; without it they pick the wrong interface or loopback",
                    )
                )
    if len(nodes) > 1 and engine.multi_node == "mpi":
        problems += one_fabric_problems(nodes, f"{engine.kind.value} across nodes")
    if accel is not None and accel.vendor == "ascend":
        tls = {n.npu.tls for n in nodes}
        if len(tls) > 1:
            problems.append(
                Problem(where, "npu_tls", "HCCL TLS must be on or off on every node alike")
            )
        for n in nodes:
            if len(n.npu.device_ips) != n.accelerator.count:
                problems.append(
                    Problem(
                        n.name,
                        "npu_device_ips",
                        f"needs one address per NPU: {n.accelerator.count} NPUs, "
                        f"{len(n.npu.device_ips)} addresses",
                    )
                )
    elif any(n.npu.device_ips for n in nodes):
        problems.append(
            Problem(where, "npu_device_ips", f"only Ascend nodes have NPU device IPs ({accel_id})")
        )
    try:
        model = get_model(group.model.id, group.model.config_file)
    except UnknownModel as error:
        problems.append(Problem(where, "model_id", f"{error}; set model_config_file for others"))
    except (OSError, ValueError) as error:
        problems.append(Problem(where, "model_config_file", str(error)))
    else:
        if accel is not None:
            _check_engine_arg_values(group, model, accel, problems)
    _check_engine_args(group, problems)
    problems += _dynamo_problems(group)
    if group.serving.api_key_file is not None:
        _check_secret_file(where, "serving_api_key_file", group.serving.api_key_file, problems)
        _check_api_key(where, group.serving.api_key_file, problems)
    api_port = group.engine.port or ENGINES[group.engine.kind].default_port
    if group.serving.gateway and group.serving.backend_port == api_port:
        problems.append(
            Problem(
                where,
                "serving_backend_port",
                f"{group.serving.backend_port} is engine_port too: the gateway listens there and "
                "the engine behind it needs a port of its own",
            )
        )
    if group.hub.token_file is not None:
        _check_secret_file(where, "hub_token_file", group.hub.token_file, problems)


def _dynamo_problems(group: ServingGroup) -> list[Problem]:
    """Dynamo's pools, worker fit, control plane and KV fabric; ``dynamo_*`` keys elsewhere."""
    try:
        return dynamo_problems(group)
    except ValueError as error:  # a Dynamo version without a flag table
        return [Problem(group.head.name, "engine_version", str(error))]


def _check_engine_args(group: ServingGroup, problems: list[Problem]) -> None:
    engine = ENGINES[group.engine.kind]
    where = group.head.name
    if engine.kind == EngineKind.DYNAMO:  # its workers' tables: config/dynamo_checks.py
        return
    try:
        table = flag_table(engine, group.engine.version or engine.default_version)
    except ValueError as error:
        problems.append(Problem(where, "engine_version", str(error)))
        return
    if table is None:
        if group.engine.extra_args:
            problems.append(
                Problem(
                    where,
                    "engine_extra_args",
                    f"{engine.kind.value} takes no command-line flags; its settings are "
                    "rendered into its config.json",
                )
            )
        return
    for message in check_flags(table, group.engine.extra_args):
        problems.append(Problem(where, "engine_extra_args", message))


def _check_engine_arg_values(
    group: ServingGroup, model: ModelSpec, accel: Accelerator, problems: list[Problem]
) -> None:
    fmt = group.model.format
    if fmt is None:
        kind = group.engine.kind
        fallback = fallback_formats(model.native_format, accel, kind)
        native_runs = model.native_format in runnable_formats(accel, kind) or not fallback
        fmt = model.native_format if native_runs else fallback[0]
    for message in extra_args_problems(group.engine.kind, group.engine.extra_args, model, fmt):
        problems.append(Problem(group.head.name, "engine_extra_args", message))


def _check_secret_file(host: str, key: str, path: Any, problems: list[Problem]) -> None:
    path = path.expanduser()
    if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
        problems.append(
            Problem(host, key, f"{path} is readable by others; chmod 600 it (it holds a secret)")
        )


def _check_api_key(host: str, path: Any, problems: list[Problem]) -> None:
    """The key is one a client can send as a bearer token (the gateway and vLLM compare it)."""
    from ironserve.serving.apikey import ApiKeyError, check_bearer_token, parse_key

    try:
        check_bearer_token(parse_key(path.expanduser().read_text()))
    except (OSError, ApiKeyError) as error:
        problems.append(Problem(host, "serving_api_key_file", f"{path}: {error}"))


def _check_unique_addresses(groups: list[ServingGroup], problems: list[Problem]) -> None:
    seen_ip: dict[str, str] = {}
    seen_npu: dict[str, str] = {}
    for group in groups:
        for n in group.nodes:
            ip = str(n.node.ip)
            if ip in seen_ip:
                problems.append(
                    Problem(n.name, "node_ip", f"{ip} is already the address of {seen_ip[ip]}")
                )
            seen_ip.setdefault(ip, n.name)
            for index, address in enumerate(n.npu.device_ips):
                key = str(address)
                here = f"{n.name} NPU {index}"
                if key in seen_npu:
                    problems.append(
                        Problem(
                            n.name,
                            "npu_device_ips",
                            f"{key} (NPU {index}) is already used by {seen_npu[key]}: NPU device "
                            "IPs must be unique cluster-wide",
                        )
                    )
                seen_npu.setdefault(key, here)


def _renamed(record: HostRecord) -> HostRecord:
    """The record with keys that moved under their new names (the new name wins if both)."""
    old = [k for k in record.data if k in RENAMED_KEYS]
    if not old:
        return record
    data = {k: v for k, v in record.data.items() if k not in RENAMED_KEYS}
    for key in old:
        data.setdefault(RENAMED_KEYS[key], record.data[key])
    return HostRecord(record.name, record.groups, data)


def build_cluster(records: list[HostRecord]) -> Cluster:
    """Validate every host and every cross-host rule; raise InputError listing all problems.

    Role data keys (``ironserve.roles.<role>.defaults``) are known keys; the pins and checksums
    of what the node's roles download are checked (config/downloads.py)."""
    problems: list[Problem] = []
    members: dict[str, list[tuple[Node, dict[str, Any]]]] = defaultdict(list)
    caches: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    roles = role_keys()
    declared = roles_data()
    for record in map(_renamed, records):
        _check_keys(record, problems, roles)
        problems += _name_problems(record)
        role_problems = role_data_problems(record.name, record.data)
        problems += role_problems + _port_problems(record)
        node, shared = _node(record, problems)
        if node is not None:
            members[shared["serving_"].group].append((node, shared))
            caches[shared["serving_"].group].append((record.name, _image_cache_settings(record)))
            accel = ACCELERATORS.get(node.accelerator.kind)
            vendor = accel.vendor if accel is not None else None
            if not role_problems:  # pins of values already refused would only repeat them
                problems += download_problems(record.name, record.data, vendor, declared)
    if problems:
        raise InputError(problems)
    groups = []
    for name, group_members in members.items():
        _check_shared_agree(name, group_members, problems)
        _check_cache_agree(name, caches[name], problems)
        ordered = sorted(group_members, key=lambda m: m[0].node.role != "head")
        shared = ordered[0][1]
        group = ServingGroup(
            name=name,
            model=shared["model_"],
            engine=_engine_for_vendor(shared["engine_"], ordered[0][0]),
            hub=shared["hub_"],
            serving=shared["serving_"],
            dynamo=shared["dynamo_"],
            nodes=[n for n, _ in ordered],
        )
        _check_group(group, problems)
        groups.append(group)
    _check_unique_addresses(groups, problems)
    if problems:
        raise InputError(problems)
    return Cluster(groups=groups)


def load_cluster(inventory: str, cwd: str | None = None) -> Cluster:
    from ironserve.config.inventory import load_inventory

    return build_cluster(load_inventory(inventory, cwd))
