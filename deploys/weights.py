"""Weights: the model's files on every node of each serving group, verified.

    pyinfra -y inventories/lab.py deploys/weights.py     (or: ironserve weights pull -i ...)

The hub's metadata is read on the control machine first; every node's disk is checked before the
first byte; the group's head downloads once with the real hub client and verifies every file;
the other nodes pull from nodes that already hold it (a doubling tree over the cluster network)
and check `sha256sum -c` before anything reaches the final path. A second run changes nothing.
"""

from pyinfra import logger
from pyinfra.context import host, state

from ironserve.deploy.reach import stop_if_group_unreachable
from ironserve.roles.weights import deploy_weights

if not stop_if_group_unreachable(state, host, logger):
    deploy_weights()
