"""The part of deploys/provision.py that runs on LIGHT lab nodes (sshd under tini: no systemd,
no dockerd, no /data): roles/base, called exactly as provision.py calls it.

    pyinfra -y inventories/lab.py benchmarks/provision_light.py

With the lab inventory's data (base_time_sync None, base_sysctl_apply False: containers share
the host's kernel and clock) roles/base on an NVIDIA node is: the base packages present (one
dpkg-query fact; apt-get only for what is missing), /etc/sysctl.d/90-ironserve.conf,
/etc/security/limits.d/90-ironserve-memlock.conf and
/etc/modprobe.d/ironserve-blacklist-nouveau.conf (files.put: a sha1 fact, an upload only when it
differs). benchmarks/provision_scale.py times
its no-op re-run against benchmarks/ansible/playbook.yml, which does the same steps.

Not here: preflight (read-only checks, nothing for a playbook to mirror), roles/nvidia and
roles/container_runtime (systemd units, dockerd: light nodes have neither; the full provision
run stops on `systemctl` there) and roles/fabric (after them in provision.py).
"""

from ironserve.roles.base import deploy_base

deploy_base()
