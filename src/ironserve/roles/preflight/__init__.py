"""roles/preflight: fact-based checks of every node before any change (see deploy.py)."""

from ironserve.roles.preflight.deploy import cluster_findings, deploy_preflight

__all__ = ["cluster_findings", "deploy_preflight"]
