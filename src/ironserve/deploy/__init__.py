"""What deploys and roles share: the plan of the current host, computed once per pyinfra run."""
