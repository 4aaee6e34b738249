"""roles/webui: Open WebUI in front of a serving group's endpoint (optional; deploy.py)."""

from roles.webui.deploy import deploy_webui

__all__ = ["deploy_webui"]
