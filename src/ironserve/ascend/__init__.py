"""Huawei Ascend helpers that need no node: the rank table and the expected hccn.conf."""
