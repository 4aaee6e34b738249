"""The lab (`ironserve lab up`) as a pyinfra inventory: one host per lab node, reached over real
SSH on 127.0.0.1:<port> with the lab's key, checked against the known_hosts the lab wrote.

The lab's state is read from $IRONSERVE_LAB_DIR, else from .lab/ at the project root. With no
lab up, this inventory defines no hosts (and says so on stderr). Cluster settings shared by all
lab nodes (model, hub) are in group_data/lab.py; the per-node ones (address, accelerators,
engine kind, which follows the node's vendor) come from the state, here.

    ironserve lab up --nodes 3 --profile h100x8
    pyinfra -y inventories/lab.py exec -- hostname
    ironserve validate -i inventories/lab.py

Serving groups: all nodes are one group, unless $IRONSERVE_LAB_GROUPS maps nodes to groups
(``NODE=GROUP,...``; unlisted nodes stay in the default group); the first node of each group is
its head. E.g. ``IRONSERVE_LAB_GROUPS=h100x8-3=b`` makes node 3 a group of its own.
"""

import json as _json
import os as _os
import sys as _sys
from pathlib import Path as _Path


def _lab_dir():
    env = _os.environ.get("IRONSERVE_LAB_DIR")
    return _Path(env).resolve() if env else _Path(__file__).resolve().parent.parent / ".lab"


def _groups():
    """$IRONSERVE_LAB_GROUPS (``NODE=GROUP,...``) as {node: group}."""
    spec = _os.environ.get("IRONSERVE_LAB_GROUPS", "")
    pairs = [item.split("=", 1) for item in spec.split(",") if "=" in item]
    return {node.strip(): group.strip() for node, group in pairs}


def _memlock_settings():
    import resource as _resource

    hard = _resource.getrlimit(_resource.RLIMIT_MEMLOCK)[1]
    limit = -1 if hard == _resource.RLIM_INFINITY else hard
    return {"default-ulimits": {"memlock": {"Name": "memlock", "Hard": limit, "Soft": limit}}}


def _lab_serving(node, registry):
    """What a node's group serves. NVIDIA nodes: the lab's real model (SmolLM2-135M-Instruct) on
    the lab's real vLLM (lab/vllm_image.py: its version, its CPU settings);
    $IRONSERVE_LAB_ENGINE_VERSION picks another vLLM the lab registry holds (0.11.0: vLLM on
    Ray, on the stand-in engine) and $IRONSERVE_LAB_MODEL another hub repository (the weights
    tests take the synthetic sharded 8B). Other nodes keep group_data's model and their vendor's
    engine (stand-ins). The image: the builders' name under the lab registry, pinned by digest
    later."""
    from ironserve.catalog.engines import ENGINES, EngineKind
    from ironserve.lab import gateway_image, real_model, vllm_image
    from ironserve.lab import registry as lab_registry

    kind = node["engine_kind"]
    data = {}
    if kind == "vllm":
        version = _os.environ.get("IRONSERVE_LAB_ENGINE_VERSION") or vllm_image.VERSION
        model = _os.environ.get("IRONSERVE_LAB_MODEL") or real_model.REPO_ID
        data = {
            "model_id": model,
            "model_served_name": model.split("/")[1],
            "engine_version": version,
            "engine_extra_args": list(vllm_image.LAB_ENGINE_ARGS),
        }
    if registry and kind in ("vllm", "sglang"):
        engine = ENGINES[EngineKind(kind)]
        version = data.get("engine_version") or engine.default_version
        data["engine_image"] = f"{registry}/{engine.image(version)}"
    if registry:  # roles/gateway's nginx, built from Debian's (lab/gateway_image.py)
        data["gateway_image"] = f"{registry}/{gateway_image.reference()}"
        # roles/image_cache's registry: the lab registry's own image (Debian's docker-registry),
        # run when $IRONSERVE_LAB_IMAGE_CACHE=1 as a pull-through cache of the lab registry.
        data["image_cache_image"] = f"{registry}/{lab_registry.cache_reference()}"
        if _os.environ.get("IRONSERVE_LAB_IMAGE_CACHE") == "1":
            data["image_cache_enabled"] = True
    return data


def _provisioning(state):
    """What the roles install from the lab's repository: the versions it serves (the NVIDIA
    driver's exact apt version, the installers') and the sha256 of each installer, recorded by
    `lab up` where it built them."""
    from ironserve.lab import packages

    return {
        "nvidia_driver_version": packages.NVIDIA_DEB_VERSION,
        "ascend_driver_version": packages.ASCEND_DRIVER,
        "ascend_firmware_version": packages.ASCEND_FIRMWARE,
        "vastai_driver_version": packages.VASTAI_DRIVER,
        **packages.role_checksums(state.get("installer_sha256") or {}),
    }


def _hosts():
    path = _lab_dir() / "state.json"
    try:
        state = _json.loads(path.read_text())
    except FileNotFoundError:
        print(f"inventories/lab.py: no lab is up ({path} is missing); no hosts", file=_sys.stderr)
        return []
    hosts = []
    groups, heads = _groups(), set()
    for node in state["nodes"]:
        group = groups.get(node["name"])
        data = {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": node["ssh_port"],
            "ssh_user": state.get("ssh_user", "root"),
            "ssh_key": state["ssh_key"],
            "ssh_known_hosts_file": state["known_hosts"],
            "ssh_strict_host_key_checking": "yes",
            "node_role": "worker" if group in heads else "head",
            "node_ip": node["address"],
            "accelerator_kind": node["accelerator_kind"],
            "accelerator_count": node["accelerator_count"],
            "engine_kind": node["engine_kind"],
            "network_socket_ifname": node.get("interface", "eth0"),
            # ironserve ignores keys starting with "_": lab facts for tests and deploys
            "_lab_container": node["container"],
            "_lab_kind": node["kind"],
            "_lab_light": node["light"],
            "_lab_apt_repository": state.get("apt_repository"),
            "_lab_apt_source": state.get("apt_source"),
            # Roles (deploys/provision.py): the lab's apt repository; nodes are containers, so
            # no reboot, no kernel settings applied and no NTP client (host kernel and clock).
            "nvidia_apt_source": state.get("apt_source"),
            "ascend_installer_url": state.get("apt_repository"),
            "vastai_installer_url": state.get("apt_repository"),
            "nvidia_driver_reboot": False,
            "base_sysctl_apply": False,
            "base_time_sync": None,
            # Nodes are containers on a machine without CAP_SYS_RESOURCE: a container asking
            # for more locked memory than this machine's hard limit fails to start (runc:
            # "error setting rlimit type 8"), so dockerd's default memlock is that limit.
            "container_runtime_daemon_settings": _memlock_settings(),
            **_provisioning(state),
        }
        registry = state.get("services", {}).get("registry")
        if registry:  # the lab registry speaks plain HTTP: dockerd must be told so
            data["container_runtime_insecure_registries"] = [f"{registry['address']}:5000"]
            # ...and as a mirror of Docker Hub: `docker pull vllm/vllm-openai:v0.11.0` (the
            # builders' names, unchanged) is served by the lab registry.
            data["container_runtime_registry_mirrors"] = [registry["url"]]
            data["_lab_registry"] = f"{registry['address']}:5000"
        # Serving pins the image by digest from the lab registry itself (a name without a
        # registry would fall back to Docker Hub when the mirror lacks it).
        data |= _lab_serving(node, registry and f"{registry['address']}:5000")
        key_file = _lab_dir() / "api_key"  # written by `lab up` (0600): the endpoint's key
        if key_file.is_file():
            data["serving_api_key_file"] = str(key_file)
        hub = state.get("services", {}).get("hub")
        if hub:  # the lab model hub (HF and ModelScope APIs) on the lab network
            data["hub_endpoint"] = hub["url"]
            # Tests pull through the ModelScope API of the same hub with IRONSERVE_LAB_HUB.
            if _os.environ.get("IRONSERVE_LAB_HUB") == "modelscope":
                data["hub_kind"] = "modelscope"
            # ...and with the lab's accepted token (<lab dir>/hub-token, 0600) for gated repos.
            if _os.environ.get("IRONSERVE_LAB_HUB_TOKEN") == "1":
                data["hub_token_file"] = str(_lab_dir() / "hub-token")
        heads.add(group)
        if group is not None:
            data["serving_group"] = group
        if node.get("npu_device_ips"):
            data["npu_device_ips"] = node["npu_device_ips"]
            data["npu_netmask"] = "255.255.0.0"
            data["npu_gateway"] = "10.201.255.254"
        hosts.append((node["name"], data))
    return hosts


lab = _hosts()
