"""Role defaults as typed models: ``Model.of(host)`` is that host's own values, typed."""

from __future__ import annotations

from typing import Any

import pytest

from ironserve.errors import InputError
from ironserve.roles.base.defaults import DEFAULTS as BASE_DEFAULTS
from ironserve.roles.base.defaults import BaseData
from ironserve.roles.nvidia.defaults import NvidiaData
from ironserve.roles.preflight.defaults import PreflightData


class _Host:
    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.data = data  # a mapping stands in for pyinfra's HostData


def test_defaults_are_the_models_defaults() -> None:
    assert BaseData().model_dump() == BASE_DEFAULTS
    assert BASE_DEFAULTS["base_time_sync"] == "chrony"
    assert PreflightData.defaults()["preflight_disk_margin"] == 1.1


def test_each_host_reads_its_own_values() -> None:
    a = _Host("a", {"preflight_disk_margin": 1.5, "base_time_sync": None})
    b = _Host("b", {})
    assert PreflightData.of(a).preflight_disk_margin == 1.5
    assert PreflightData.of(b).preflight_disk_margin == 1.1  # not a's
    assert BaseData.of(a).base_time_sync is None  # None means "leave time sync alone"
    assert BaseData.of(b).base_time_sync == "chrony"


def test_none_where_none_is_no_value_is_the_default() -> None:
    host = _Host("a", {"preflight_min_shm_bytes": None, "base_memlock_unlimited": None})
    assert PreflightData.of(host).preflight_min_shm_bytes == 64 * 1024**2
    assert BaseData.of(host).base_memlock_unlimited is True


def test_values_are_typed() -> None:
    host = _Host("a", {"nvidia_driver_branch": 570, "nvidia_fabricmanager": "auto"})
    data = NvidiaData.of(host)
    assert data.nvidia_driver_branch == "570" and data.nvidia_fabricmanager == "auto"
    assert NvidiaData.of(_Host("b", {"nvidia_fabricmanager": False})).nvidia_fabricmanager is False


def test_a_bad_value_names_host_and_key() -> None:
    with pytest.raises(InputError) as error:
        PreflightData.of(_Host("n7", {"preflight_disk_margin": "lots"}))
    assert "n7: preflight_disk_margin:" in str(error.value)
    with pytest.raises(InputError):
        BaseData.of(_Host("n7", {"base_time_sync": "ntpd"}))


def test_health_refuses_bad_role_data_before_any_node_is_probed() -> None:

    from ironserve.health.runner import check_role_data, role_models

    models = role_models()
    check_role_data([_Host("a", {}), _Host("b", {"base_time_sync": None})], models)
    with pytest.raises(InputError) as error:
        check_role_data([_Host("a", {}), _Host("b", {"preflight_min_shm_bytes": "big"})], models)
    assert [(p.host, p.field) for p in error.value.problems] == [("b", "preflight_min_shm_bytes")]
