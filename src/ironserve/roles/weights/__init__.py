"""roles/weights: the model's weights on every node of a serving group, verified (deploy.py)."""

from ironserve.roles.weights.deploy import deploy_weights

__all__ = ["deploy_weights"]
