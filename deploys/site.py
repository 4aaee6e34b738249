"""Site: everything from bare nodes to a serving cluster.

    pyinfra -y inventories/lab.py deploys/site.py

Today: provisioning. Weights (download, verify, fan-out) and serve (engine containers from the
Plan) come next, as deploys/weights.py and deploys/serve.py, included here in that order.
"""

from pyinfra import local

local.include("deploys/provision.py")
# local.include("deploys/weights.py")  # next: weights on every node, verified
# local.include("deploys/serve.py")    # then: the engine containers the Plan describes
