"""Restart: each serving group restarted in order -- the head's container, the workers', the
Ray wait and the serve command (vLLM on Ray), then the readiness wait and a real completion.
Missing or stopped containers are started again from the Plan (a killed worker comes back).

    pyinfra -y inventories/lab.py deploys/restart.py
    pyinfra -y inventories/site.py deploys/restart.py --limit 'a-*'   # one group's hosts

A group is one endpoint (TP/PP span its nodes), so it cannot answer while it restarts; groups of
one run restart side by side, so roll them one at a time with --limit.
"""

from ironserve.roles.engine import deploy_engine_restart

deploy_engine_restart()
