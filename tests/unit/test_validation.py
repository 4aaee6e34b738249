"""Every inventory and role key has a type and a range, checked before any SSH: a bad value is
one problem naming host and key (issue "Hardening", validation).

Each case here was accepted before the value types of config/values.py and the roles' models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ironserve.config import build_cluster
from ironserve.config.inventory import HostRecord
from ironserve.errors import InputError
from tests.conftest import ROOT

GROUP = {
    "model_id": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "model_weights_dir": "/data/models",
    "engine_kind": "vllm",
    "accelerator_kind": "h100-80g",
    "accelerator_count": 1,
}


def _record(name: str = "n0", **data: Any) -> HostRecord:
    values = {**GROUP, "node_role": "head", "node_ip": "10.20.0.10", **data}
    return HostRecord(name, ("site",), values)


def _problems(record: HostRecord) -> list[tuple[str, str, str]]:
    with pytest.raises(InputError) as caught:
        build_cluster([record])
    return [(p.host, p.field, p.message) for p in caught.value.problems]


def _secret(path: Path, text: str = "sk-test\n") -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


# Inventory keys: (key, bad value) -> refused, naming host and key.
BAD_INVENTORY_VALUES = [
    ("model_weights_dir", "../../etc"),
    ("model_weights_dir", "/:/host:rw"),
    ("model_weights_dir", "/data/../etc"),
    ("model_weights_dir", "/data/models\n/etc"),
    ("model_revision", "--force"),
    ("model_revision", "main; rm -rf /"),
    ("model_served_name", ""),
    ("model_served_name", "-x"),
    ("model_served_name", "a name"),
    ("serving_group", "../../root/.ssh"),
    ("serving_group", ".."),
    ("serving_group", "a\nssh-ed25519 AAAA x"),
    ("engine_image", "--privileged"),
    ("engine_image", "vllm/vllm-openai:v0.8.5; touch /x"),
    ("engine_image", "Vllm/Upper:tag"),
    ("engine_port", 99999),
    ("engine_port", 22),
    ("engine_port", True),
    ("engine_port", "8000"),
    ("engine_shm_size", "32g --privileged"),
    ("engine_version", "0.8.5 --x"),
    ("engine_expert_parallel", 1),
    ("engine_tensor_parallel_size", True),
    ("engine_memory_utilization", True),
    ("hub_endpoint", "not a url"),
    ("hub_endpoint", "http://"),
    ("hub_endpoint", "ftp://mirror.example"),
    ("hub_bandwidth", "10Gb"),
    ("hub_bandwidth", 1_000_000_000),
    ("hub_bandwidth", "0Gbit/s"),
    ("network_fabric_bandwidth", "25 gigabit"),
    ("network_fabric_bandwidth", "100Tbit/s"),
    ("engine_image_size", "12Gbit"),
    ("engine_image_size", "12"),
    ("accelerator_count", True),
    ("network_socket_ifname", "eth0 lo"),
    ("network_ib_hcas", ["mlx5_0", "mlx5_1,mlx5_2"]),
    ("npu_tls", 0),
]


@pytest.mark.parametrize(("key", "value"), BAD_INVENTORY_VALUES, ids=lambda v: repr(v)[:30])
def test_a_bad_inventory_value_is_refused_naming_host_and_key(key: str, value: Any) -> None:
    found = _problems(_record(**{key: value}))
    assert [(host, field) for host, field, _ in found] == [("n0", key)]
    assert all("\n" not in message for _, _, message in found)


def test_the_api_port_must_not_be_an_engine_internal_port() -> None:
    (found,) = _problems(_record(engine_port=6379))
    assert found[:2] == ("n0", "engine_port") and "Ray GCS" in found[2]
    (found,) = _problems(_record(engine_port=10001))
    assert "Ray Client" in found[2]


def test_the_api_port_must_not_be_a_port_of_an_enabled_role_on_the_node() -> None:
    assert build_cluster([_record(engine_port=3000)])  # the WebUI is off
    (found,) = _problems(_record(engine_port=3000, webui_enabled=True))
    assert found[:2] == ("n0", "engine_port") and "Open WebUI" in found[2]
    (found,) = _problems(_record(engine_port=9100, monitoring_enabled=True))
    assert "monitoring (node exporter)" in found[2]


def test_the_gateways_backend_port_is_a_port_of_its_own() -> None:
    (found,) = _problems(_record(engine_port=8000, serving_backend_port=8000))
    assert found[:2] == ("n0", "serving_backend_port") and "engine_port" in found[2]
    (found,) = _problems(_record(serving_backend_port=6379))
    assert found[:2] == ("n0", "serving_backend_port") and "Ray GCS" in found[2]
    # Without the gateway the backend port is unused: no clash with the API port.
    assert build_cluster(
        [_record(engine_port=8000, serving_backend_port=8000, serving_gateway=False)]
    )


def test_an_api_key_that_is_no_bearer_token_is_refused(tmp_path: Path) -> None:
    """The gateway and vLLM compare ``Authorization: Bearer <key>``: a key with a space, a quote
    or a ``$`` could never be sent, and would reach nginx's configuration."""
    for bad in ("two words", 'a"b', "k$ey", "k;ey"):
        key = _secret(tmp_path / "api-key", bad + "\n")
        (found,) = _problems(_record(serving_api_key_file=str(key)))
        assert found[:2] == ("n0", "serving_api_key_file") and "RFC 6750" in found[2], bad
    good = _secret(tmp_path / "api-key", "sk-Abc.def_~+/9\n")
    assert build_cluster([_record(serving_api_key_file=str(good))])


def test_files_that_must_exist_do_and_are_files(tmp_path: Path) -> None:
    for key in (
        "serving_api_key_file",
        "hub_token_file",
        "model_config_file",
        "webui_admin_password_file",
    ):
        (found,) = _problems(_record(**{key: str(tmp_path / "no-such-file")}))
        assert found == ("n0", key, "no such file on this machine")
    (found,) = _problems(_record(serving_api_key_file=str(tmp_path)))
    assert found[1] == "serving_api_key_file" and "not a regular file" in found[2]
    key = _secret(tmp_path / "key")
    assert build_cluster([_record(serving_api_key_file=str(key), hub_token_file=str(key))])


def test_a_custom_models_id_cannot_reach_outside_the_weights_folder(tmp_path: Path) -> None:
    # With model_config_file the catalog does not vouch for the id; it becomes the weights path.
    shipped = ROOT / "src/ironserve/catalog/data/models/Qwen--Qwen3-32B.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(json.loads(shipped.read_text())["config"]))
    (found,) = _problems(_record(model_id="../../../../etc/cron.d", model_config_file=str(config)))
    assert found[:2] == ("n0", "model_id")
    assert build_cluster([_record(model_id="site/Qwen3-32B-ft", model_config_file=str(config))])


def test_a_token_given_as_its_own_file_path_is_not_echoed() -> None:
    (found,) = _problems(_record(hub_token_file="hf_SECRETSECRETSECRET"))
    assert found[1] == "hub_token_file" and "SECRET" not in found[2]


def test_host_names_are_names() -> None:
    (found,) = _problems(_record(name="n0/../../x"))
    assert found[1] == "host name"
    assert build_cluster([_record(name="@fake/h100-a")])  # pyinfra's connector prefix


def test_good_values_pass_unchanged() -> None:
    cluster = build_cluster(
        [
            _record(
                model_revision="refs/pr/1",
                model_served_name="org/model:v1",
                engine_image="10.0.0.5:5000/vllm/vllm-openai:v0.11.0",
                engine_port=8123,
                engine_memory_utilization=1,
                hub_endpoint="https://hf-mirror.com",
                hub_bandwidth="1.25GB/s",
                network_fabric_bandwidth="100Gbps",
                engine_image_size="9.5GiB",
                network_ib_hcas=["mlx5_0"],
                serving_group="r1.prod-a",
            )
        ]
    )
    (group,) = cluster.groups
    assert group.engine.image == "10.0.0.5:5000/vllm/vllm-openai:v0.11.0"
    assert group.model.served_name == "org/model:v1" and group.engine.port == 8123
    assert group.hub.endpoint == "https://hf-mirror.com" and group.name == "r1.prod-a"
    assert (group.hub.bandwidth, group.engine.image_size) == ("1.25GB/s", "9.5GiB")
    assert group.head.network.fabric_bandwidth == "100Gbps"


# Role keys: typed by the roles' models (ironserve.roles.<role>.defaults) with the inventory.
BAD_ROLE_VALUES = [
    ("nvidia_driver_branch", "580; rm -rf /"),
    ("nvidia_driver_version", "580.95.05 && x"),
    ("nvidia_apt_source", "deb http://mirror ./\nexit"),
    ("nvidia_persistence_mode", 1),
    ("ascend_driver_version", "24.1/../../x"),
    ("ascend_download_dir", "var/cache"),
    ("ascend_installer_url", "not a url"),
    ("ascend_user", "root;id"),
    ("vastai_driver_version", "3.3.0 x"),
    ("vastai_download_dir", "/var/cache/$(id)"),
    ("vastai_download_dir", "/var/download dir"),
    ("ascend_download_dir", "/var/download dir"),
    ("weights_client_venv", "/opt/hub client"),
    ("base_packages", ["curl", "-o/etc/x"]),
    ("base_sysctl", {"vm.x": "1\nkernel.y = 2"}),
    ("base_sysctl_apply", "yes"),
    ("container_runtime_registry_mirrors", ["mirror.local"]),
    ("container_runtime_log_max_size", "100m x"),
    ("monitoring_prometheus_image", "--privileged"),
    ("monitoring_prometheus_port", 80),
    ("monitoring_scrape_interval", "15 s"),
    ("monitoring_dir", "/etc/ironserve/../x"),
    ("webui_port", True),
    ("webui_image", "a b"),
    ("weights_client_lock", "/nonexistent/hub-client.txt"),
    ("weights_client_lock", "pyproject.toml"),  # a file, not a lock: no pinned line
    ("weights_attempts", True),
    ("weights_config_dir", "relative/dir"),
    ("weights_pip_index_url", "pypi.local"),
    ("serve_ready_timeout", True),
    ("serve_poll_interval", "2"),
    ("serve_stop_grace", 0),
    ("serve_completion_prompt", ""),
]


@pytest.mark.parametrize(("key", "value"), BAD_ROLE_VALUES, ids=lambda v: repr(v)[:30])
def test_a_bad_role_value_is_refused_naming_host_and_key(key: str, value: Any) -> None:
    found = _problems(_record(**{key: value}))
    assert [(host, field) for host, field, _ in found] == [("n0", key)]


def test_role_values_written_as_numbers_are_taken_as_text() -> None:
    assert build_cluster([_record(nvidia_driver_branch=580, nvidia_driver_version="580.1-1")])


def test_the_engine_roles_data_is_a_typed_model_read_like_the_others() -> None:
    from ironserve.config.role_keys import roles_data
    from ironserve.roles.engine.defaults import DEFAULTS, EngineData

    engine = next(r for r in roles_data() if r.name == "engine")
    assert engine.model is EngineData and engine.defaults == DEFAULTS
    assert all(r.model is not None for r in roles_data())  # every role, not only some

    class Host:
        def __init__(self, data: dict[str, Any]) -> None:
            self.name, self.data = "n0", data

    data = EngineData.of(Host({"serve_stop_grace": 5, "serve_ready_timeout": None}))
    assert data.serve_stop_grace == 5 and data.serve_ready_timeout == 7200  # None: the default
    with pytest.raises(InputError, match="serve_stop_grace"):
        EngineData.of(Host({"serve_stop_grace": True}))
