"""Huawei Ascend NPU nodes: HwHiAiUser, driver and firmware, hccn ports, the rank table."""

from ironserve.roles.ascend.deploy import deploy_ascend

__all__ = ["deploy_ascend"]
