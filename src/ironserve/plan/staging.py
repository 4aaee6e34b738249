"""How long staging a group takes, and which link bounds it: the weights and the engine image,
estimated from the links the inventory names (``hub_bandwidth``, each node's
``network_fabric_bandwidth``) the way the deploy moves them today:

- weights (roles/weights): the seed (the group's head) downloads the checkpoint once from the hub
  over the site link (or its own port, if slower); then doubling rounds over the cluster network
  (weights/schedule.py: ``rounds_for``), each holder copying the whole checkpoint to one receiver
  a round, so a round takes ``weights / the slowest node's link``. The deploy streams instead
  (each file copied on as soon as it is verified, overlapping the download), so this is an upper
  bound of its time;
- the image (roles/engine): every node pulls it from the registry at once (no pull-through cache
  yet), N pulls sharing the site link, each also bounded by its node's own port.

Steps run one after the other (deploys/site.py: weights, then serve), so the times add up.
Pure: the same context and links always give the same estimate.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from ironserve.config.schema import DEFAULT_FABRIC_BANDWIDTH, DEFAULT_SITE_BANDWIDTH
from ironserve.config.values import bytes_per_second, size_bytes
from ironserve.engines.base import LaunchContext
from ironserve.plan.derived import weights_bytes_per_node
from ironserve.weights.schedule import rounds_for

SITE_LINK = "the site link"
CLUSTER_NETWORK = "the cluster network"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Links(_Frozen):
    """The links the estimate reads, in bytes per second (an inventory's values, or defaults)."""

    site: float = Field(default_factory=lambda: bytes_per_second(DEFAULT_SITE_BANDWIDTH), gt=0)
    # node name -> its link to the cluster network; a node not named has the default.
    fabric: dict[str, float] = Field(default_factory=dict)
    image_bytes: int | None = None  # None: the engine's catalog figure

    def fabric_of(self, node: str) -> float:
        return self.fabric.get(node, bytes_per_second(DEFAULT_FABRIC_BANDWIDTH))


class Step(_Frozen):
    """One staging step: ``rounds`` one after the other, each ``sharing`` transfers of ``bytes``
    at once over ``link`` (``bytes_per_second``, the link that bounds the step)."""

    what: str
    bytes: int
    rounds: int
    sharing: int
    link: str
    bytes_per_second: float
    seconds: float


class Staging(_Frozen):
    """The group's staging estimate: the weights (download, fan-out), then the image pulls."""

    nodes: int
    weights_bytes: int
    image: str
    image_bytes: int
    download: Step
    fanout: Step
    image_pull: Step
    weights_seconds: float
    total_seconds: float
    bound_by: str  # the link that takes the most of total_seconds: SITE_LINK or CLUSTER_NETWORK

    @property
    def steps(self) -> list[Step]:
        return [self.download, self.fanout, self.image_pull]


def _step(what: str, size: int, rounds: int, link: str, rate: float, sharing: int = 1) -> Step:
    return Step(
        what=what,
        bytes=size,
        rounds=rounds,
        sharing=sharing,
        link=link,
        bytes_per_second=rate,
        seconds=rounds * sharing * size / rate,
    )


def _slowest(ctx: LaunchContext, links: Links) -> tuple[str, float]:
    """The node with the slowest link to the cluster network, and its bytes per second."""
    rate, name = min((links.fabric_of(n.name), n.name) for n in ctx.nodes)
    return name, rate


def _port(node: str) -> str:
    return f"{CLUSTER_NETWORK} ({node}'s port)"


def staging_of(ctx: LaunchContext, links: Links | None = None) -> Staging:
    """The estimate for ``ctx``'s group over ``links`` (defaults where None)."""
    links = links or Links()
    weights = weights_bytes_per_node(ctx.sizing)
    count = len(ctx.nodes)
    seed = ctx.head.name
    seed_rate = links.fabric_of(seed)
    if links.site <= seed_rate:
        download = _step("weights download", weights, 1, f"{SITE_LINK} to the hub", links.site)
    else:
        download = _step("weights download", weights, 1, _port(seed), seed_rate)
    # The slowest port bounds a fan-out round and the image pulls: named where ports differ.
    slow_node, slow_rate = _slowest(ctx, links)
    uniform = len({links.fabric_of(n.name) for n in ctx.nodes}) == 1
    slow_link = CLUSTER_NETWORK if uniform else _port(slow_node)
    fanout = _step("weights fan-out", weights, rounds_for(count), slow_link, slow_rate)
    image_bytes = links.image_bytes or ctx.engine.image_bytes
    # N pulls at once: the site link carries N images, each node's port one.
    if count * image_bytes / links.site >= image_bytes / slow_rate:
        pull = _step(
            "image pulls", image_bytes, 1, f"{SITE_LINK} to the registry", links.site, count
        )
    else:
        pull = _step("image pulls", image_bytes, 1, slow_link, slow_rate)
    steps = [download, fanout, pull]
    by_link: dict[str, float] = {}
    for step in steps:
        # Two links: the site link (the hub and the registry behind it) and the cluster network
        # (every node's port on it).
        link = SITE_LINK if step.link.startswith(SITE_LINK) else CLUSTER_NETWORK
        by_link[link] = by_link.get(link, 0.0) + step.seconds
    return Staging(
        nodes=count,
        weights_bytes=weights,
        image=ctx.image,
        image_bytes=image_bytes,
        download=download,
        fanout=fanout,
        image_pull=pull,
        weights_seconds=download.seconds + fanout.seconds,
        total_seconds=sum(step.seconds for step in steps),
        bound_by=max(by_link, key=lambda link: by_link[link]),
    )


def links_of(site: str, fabric: Mapping[str, str], image_size: str | None = None) -> Links:
    """:class:`Links` from the inventory's strings (``hub_bandwidth``, each node's
    ``network_fabric_bandwidth``, ``engine_image_size``), validated already (config/values.py)."""
    return Links(
        site=bytes_per_second(site),
        fabric={node: bytes_per_second(text) for node, text in fabric.items()},
        image_bytes=size_bytes(image_size) if image_size is not None else None,
    )


def duration(seconds: float) -> str:
    """``1h 31m 25s``, ``3m 05s``, ``42s`` (whole seconds, rounded up: an estimate never
    promises less than it computed)."""
    total = int(-(-seconds // 1))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def rate_text(rate: float) -> str:
    """Bytes per second as the bits per second links are sold in: ``1 Gbit/s``, ``25 Gbit/s``."""
    bits = rate * 8
    for unit, scale in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6)):
        if bits >= scale:
            return f"{bits / scale:.3g} {unit}"
    return f"{bits / 1e3:.3g} kbit/s"
