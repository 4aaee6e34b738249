"""Deploy file for the lab tests: roles/preflight, then roles/ascend on every host of
inventories/lab.py."""

from ironserve.roles.ascend import deploy_ascend
from ironserve.roles.preflight import deploy_preflight

deploy_preflight()
deploy_ascend()
