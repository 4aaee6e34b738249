"""Provision: bare nodes in, nodes ready to serve out.

    pyinfra -y inventories/lab.py deploys/provision.py

1. validate the inventory and plan (the Plan is computed once per run; roles read it),
1b. a serving group with an unreachable node (SSH connect failed) fails as a whole: its other
   nodes are taken out of the run before any change; the other groups go on; a summary per
   group is printed at the end and the exit code is non-zero,
2. preflight every node (facts only); one failure stops the run before any change anywhere,
3. base OS, the accelerator vendor's role (nvidia / ascend / vastai), the container runtime
   (after the vendor role: it needs nvidia-container-toolkit), the RDMA fabric,
4. the firewall: inbound traffic from the serving group's nodes, replies, and the public ports
   (SSH, the API) only, before weights and serving open any port (roles/firewall).
"""

from pyinfra import logger
from pyinfra.context import host, state

from ironserve.deploy.reach import stop_if_group_unreachable
from ironserve.roles import vendor_deploy, vendor_of
from ironserve.roles.base import deploy_base
from ironserve.roles.container_runtime import deploy_container_runtime
from ironserve.roles.fabric import deploy_fabric
from ironserve.roles.firewall import deploy_firewall
from ironserve.roles.preflight import deploy_preflight

if not stop_if_group_unreachable(state, host, logger):
    deploy_preflight()
    deploy_base()
    vendor_deploy(vendor_of(state, host))()
    deploy_container_runtime()
    deploy_fabric()
    deploy_firewall()
