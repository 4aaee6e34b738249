"""Site: everything from bare nodes to a serving cluster.

    pyinfra -y inventories/lab.py deploys/site.py

Provisioning, then the weights (one download from the hub, verified, fanned out to every node:
deploys/weights.py), then serve (the engine containers from the Plan, the endpoint proven with a
chat completion: deploys/serve.py), then monitoring when the inventory turns it on
(deploys/monitoring.py).
"""

from pyinfra import local

local.include("deploys/provision.py")
local.include("deploys/weights.py")  # weights on every node, verified (issue 5)
local.include("deploys/serve.py")  # the engine containers the Plan describes (issue 6)
local.include("deploys/monitoring.py")  # exporters, Prometheus, alerts (monitoring_enabled)
