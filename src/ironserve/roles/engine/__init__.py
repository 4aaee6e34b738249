"""roles/engine: the Plan's engine containers on every node, the serve command, the waits.

``deploy_engine`` (deploys/serve.py) converges: secrets env file, image pinned by digest and
pulled, containers created or replaced only where their spec changed, the Ray wait, the serve
command, readiness and a real chat completion. ``deploy_engine_stop`` (deploys/stop.py) removes
every container of the group; ``deploy_engine_restart`` (deploys/restart.py) restarts a group in
order. See decide.py for what a run decides before its first operation.
"""

from ironserve.roles.engine.deploy import deploy_engine, deploy_engine_restart, deploy_engine_stop

__all__ = ["deploy_engine", "deploy_engine_restart", "deploy_engine_stop"]
