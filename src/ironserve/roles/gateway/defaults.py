"""Data keys of roles/gateway (role-prefixed). Whether the gateway runs, and what it leaves
public, are the serving group's settings (``serving_gateway``, ``serving_public_*``)."""

from ironserve.config.values import Image
from ironserve.deploy.role_data import RoleData


class GatewayData(RoleData):
    # nginx's stable line, Alpine build (about 20 MB); pinned by digest at deploy time.
    gateway_image: Image = "nginx:1.28.0-alpine"


DEFAULTS = GatewayData.defaults()
