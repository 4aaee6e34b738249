"""Data keys of roles/webui (role-prefixed; None = must be given when the role is enabled)."""

from ironserve.config.values import Email, ExistingFile, Flag, Image, Line, Port
from ironserve.deploy.role_data import RoleData


class WebuiData(RoleData):
    # Open WebUI in front of the group's endpoint; off unless the inventory turns it on.
    webui_enabled: Flag = False
    # A release that creates the admin headlessly from WEBUI_ADMIN_EMAIL/PASSWORD on first start.
    webui_image: Image = "ghcr.io/open-webui/open-webui:v0.6.36"
    webui_port: Port = 3000
    webui_admin_email: Email = "admin@ironserve.local"
    webui_admin_name: Line = "ironserve admin"
    # A 0600 file on this machine holding the admin password: required, there is no default.
    webui_admin_password_file: ExistingFile | None = None


DEFAULTS = WebuiData.defaults()
