"""Health checks (issue 7): probe every node over SSH and judge it against the inventory.

``ironserve health -i INVENTORY [--tier node|all] [--node NAME] [--json]``; exit codes in
:mod:`ironserve.health.model`, runbook ids in :data:`RUNBOOKS`.
"""

from ironserve.health.model import RUNBOOKS, CheckResult, Status, exit_code

__all__ = ["RUNBOOKS", "CheckResult", "Status", "exit_code"]
