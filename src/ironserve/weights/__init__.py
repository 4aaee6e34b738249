"""Model weights: hub metadata on the control machine, one download on the group's seed, a
verified fan-out to the other nodes over the cluster network (issue 5)."""
