"""roles/gateway: the reverse proxy that checks the API key on the public port (deploy.py)."""

from ironserve.roles.gateway.deploy import deploy_gateway

__all__ = ["deploy_gateway"]
