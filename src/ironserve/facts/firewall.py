"""Facts for roles/firewall: whether ironserve's nftables table is loaded, and the port this
SSH session came in on (a firewall must never close the door it is being configured through)."""

from __future__ import annotations

from pyinfra.api.facts import FactBase


class IronserveTableLoaded(FactBase[bool]):
    """``nft list table inet ironserve`` succeeds: the table is in the kernel now (a reboot
    without the unit, or ``nft flush ruleset``, removes it while the file stays)."""

    def command(self) -> str:
        return "nft list table inet ironserve >/dev/null 2>&1 && echo loaded || echo absent"

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return output[-1:] == ["loaded"]


def server_port(ssh_connection: str) -> int | None:
    """The server port of ``$SSH_CONNECTION`` ("client_ip client_port server_ip server_port")."""
    fields = ssh_connection.split()
    return int(fields[3]) if len(fields) == 4 and fields[3].isdigit() else None


class SshServerPort(FactBase[int | None]):
    """The node-side port of this run's SSH connection (None when not over SSH)."""

    def command(self) -> str:
        return 'echo "${SSH_CONNECTION:-}"'

    @staticmethod
    def default() -> int | None:
        return None

    def process(self, output: list[str]) -> int | None:
        return server_port(output[-1]) if output else None
