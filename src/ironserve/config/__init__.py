"""The inventory's data, validated: ``load_cluster(inventory) -> Cluster``."""

from ironserve.config.loader import build_cluster, load_cluster
from ironserve.config.schema import Cluster, Node, ServingGroup

__all__ = ["Cluster", "Node", "ServingGroup", "build_cluster", "load_cluster"]
