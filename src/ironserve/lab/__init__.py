"""The lab: a multi-node cluster on one machine, with simulated accelerators."""
