"""roles/image_cache: the group's pull-through registry on its head (deploy.py)."""

from ironserve.roles.image_cache.deploy import deploy_image_cache

__all__ = ["deploy_image_cache"]
