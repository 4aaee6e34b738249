"""roles/base: OS packages, sysctl, memlock, time sync, nouveau blacklist (see deploy.py)."""

from ironserve.roles.base.deploy import deploy_base

__all__ = ["deploy_base"]
