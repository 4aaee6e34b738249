"""roles/webui: Open WebUI in front of a serving group's endpoint (optional; deploy.py)."""

from ironserve.roles.webui.deploy import deploy_webui

__all__ = ["deploy_webui"]
