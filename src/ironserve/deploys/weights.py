"""The weights deploy that `ironserve weights pull -i INVENTORY` runs (pyinfra's API, as
`pyinfra -y` runs a deploy file), shipped in the package so an installed ironserve needs no
checkout: a pyinfra deploy file, run by path (importlib.resources), never imported.

The checkout's deploys/weights.py (for `pyinfra -y INVENTORY deploys/weights.py` and
deploys/site.py) composes the same role the same way; tests/deploys/test_deploy_files.py holds
the two to the same operations.
"""

from pyinfra import logger
from pyinfra.context import host, state

from ironserve.deploy.reach import stop_if_group_unreachable
from ironserve.roles.weights import deploy_weights

if not stop_if_group_unreachable(state, host, logger):
    deploy_weights()
