"""What monitoring containers a node runs: name -> (spec label, state), from `docker ps`."""

from __future__ import annotations

from typing import Any

from pyinfra.api.facts import FactBase

from ironserve.roles.monitoring.render import SPEC_LABEL


def parse_containers(lines: list[str]) -> dict[str, tuple[str, str]]:
    """``name<TAB>spec<TAB>state`` lines -> {name: (spec, state)}; blank lines skipped."""
    found = {}
    for line in lines:
        parts = line.strip().split("\t")
        if len(parts) == 3 and parts[0]:
            found[parts[0]] = (parts[1], parts[2])
    return found


class MonitoringContainers(FactBase[dict[str, tuple[str, str]]]):
    """Containers carrying the monitoring spec label, running or not."""

    default = dict

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"

    def command(self) -> str:
        fmt = '{{.Names}}\t{{.Label "' + SPEC_LABEL + '"}}\t{{.State}}'
        return f"docker ps -a --filter label={SPEC_LABEL} --format '{fmt}'"

    def process(self, output: Any) -> dict[str, tuple[str, str]]:
        return parse_containers(list(output))
