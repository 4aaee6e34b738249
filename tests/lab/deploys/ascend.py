"""Deploy file for the lab tests: roles/ascend on every host of inventories/lab.py."""

from roles.ascend import deploy_ascend

deploy_ascend()
