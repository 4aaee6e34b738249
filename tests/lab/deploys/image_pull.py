"""The image half of deploys/serve.py alone, for tests/lab/test_image_cache.py: the group's image
cache (roles/image_cache), then roles/engine's pull of the pinned engine image on every node (the
cache filled from the head first), and no engine container."""

from pyinfra.context import host, state

from ironserve.roles.engine.decide import group_of
from ironserve.roles.engine.deploy import pull_engine_image
from ironserve.roles.image_cache import deploy_image_cache

deploy_image_cache()
group = group_of(state, host)
pull_engine_image(group, group.node(host.name))
