"""Stop: every ironserve container of each serving group removed; nothing left running.

    pyinfra -y inventories/lab.py deploys/stop.py

Containers are found by the group's label and by the Plan's names (one started by hand from
`ironserve render` is removed too). Images, weights and the env file stay, so deploys/serve.py
starts again quickly. A second run changes nothing.
"""

from ironserve.roles.engine import deploy_engine_stop

deploy_engine_stop()
