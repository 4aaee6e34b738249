"""How long staging a group takes, and which link bounds it: the weights and the engine image,
estimated from the links the inventory names (``hub_bandwidth``, each node's
``network_fabric_bandwidth``) the way the deploy moves them today:

- weights (roles/weights): the seed (the group's head) downloads the checkpoint once from the hub
  over the site link (or its own port, if slower), while the others stream it through the tree of
  weights/schedule.py: each node pulls every file from its upstream as soon as that upstream has
  verified it, so the copies overlap the download, and a file reaches the deepest node after
  ``hops(N)`` copies. A node serving two receivers shares its port between them, so a copy runs
  at the slowest port / the fan-out. The weights are on every node once the slower of the download
  and the copies has passed the whole checkpoint, plus the hops of the last file behind it;
- the image (roles/engine): every node pulls it from the registry at once (no pull-through cache
  yet), N pulls sharing the site link, each also bounded by its node's own port.

The image pulls run after the weights (deploys/site.py: weights, then serve), so the times add up.
Pure: the same context and links always give the same estimate.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from ironserve.config.schema import DEFAULT_FABRIC_BANDWIDTH, DEFAULT_SITE_BANDWIDTH
from ironserve.config.values import bytes_per_second, size_bytes
from ironserve.engines.base import LaunchContext
from ironserve.plan.derived import weights_bytes_per_node
from ironserve.weights.schedule import FANOUT, hops

SITE_LINK = "the site link"
CLUSTER_NETWORK = "the cluster network"
# The file the stream's tail carries: the checkpoint's largest shard. Hub checkpoints are sharded
# by transformers' save_pretrained, whose default max_shard_size is "5GB" (capped at the weights:
# a smaller checkpoint is one file).
HUB_SHARD_BYTES = 5 * 10**9


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
    """One staging step: ``sharing`` transfers of ``bytes`` at once over ``link``, the link that
    bounds the step, whose rate is ``bytes_per_second``; ``seconds`` it adds to the total."""

    what: str
    bytes: int
    sharing: int
    link: str
    bytes_per_second: float
    seconds: float


class Stream(Step):
    """The weights stream: ``sharing`` is the fan-out (the copies a serving node's port carries
    at once, 0 on one node), each copy at ``copy_bytes_per_second``; a file reaches the deepest
    node after ``hops`` copies, the last of them ``file_bytes``. ``seconds`` is what the stream
    adds after the download: the rest of the checkpoint where the copies are slower (``link`` is
    then the cluster network, or the slow node's port), else only the last file's hops (``link``
    is then the download's: the stream keeps pace with it)."""

    hops: int
    file_bytes: int
    copy_bytes_per_second: float


class Staging(_Frozen):
    """The group's staging estimate: the weights (download, stream), then the image pulls."""

    nodes: int
    weights_bytes: int
    image: str
    image_bytes: int
    download: Step
    stream: Stream
    image_pull: Step
    weights_seconds: float  # the weights on every node
    total_seconds: float
    bound_by: str  # the link that takes the most of total_seconds: SITE_LINK or CLUSTER_NETWORK

    @property
    def steps(self) -> list[Step]:
        return [self.download, self.stream, self.image_pull]


def _step(what: str, size: int, link: str, rate: float, sharing: int = 1) -> Step:
    return Step(
        what=what,
        bytes=size,
        sharing=sharing,
        link=link,
        bytes_per_second=rate,
        seconds=sharing * size / rate,
    )


def _slowest(ctx: LaunchContext, links: Links) -> tuple[str, float]:
    """The node with the slowest link to the cluster network, and its bytes per second."""
    rate, name = min((links.fabric_of(n.name), n.name) for n in ctx.nodes)
    return name, rate


def _port(node: str) -> str:
    return f"{CLUSTER_NETWORK} ({node}'s port)"


def _stream(weights: int, count: int, download: Step, port: tuple[str, float]) -> Stream:
    """The stream over ``count`` nodes behind ``download``; ``port``: the slowest port's link
    name and rate, which bounds every copy (conservative where that node serves no one)."""
    link, rate = port
    # The seed serves the first two receivers (schedule.upstreams): one where there is only one.
    fan = min(FANOUT, count - 1)
    depth = hops(count)
    shard = min(HUB_SHARD_BYTES, weights)
    if fan == 0:  # one node: nothing to copy
        return Stream(
            what="weights stream",
            bytes=weights,
            sharing=0,
            link=link,
            bytes_per_second=rate,
            seconds=0.0,
            hops=0,
            file_bytes=shard,
            copy_bytes_per_second=rate,
        )
    copy = rate / fan
    behind = weights / copy - download.seconds  # how far the copies fall behind the download
    if behind <= 0:  # they keep pace with it: the download's link bounds the stream
        link, rate = download.link, download.bytes_per_second
    return Stream(
        what="weights stream",
        bytes=weights,
        sharing=fan,
        link=link,
        bytes_per_second=rate,
        seconds=max(behind, 0.0) + depth * shard / copy,
        hops=depth,
        file_bytes=shard,
        copy_bytes_per_second=copy,
    )


def staging_of(ctx: LaunchContext, links: Links | None = None) -> Staging:
    """The estimate for ``ctx``'s group over ``links`` (defaults where None)."""
    links = links or Links()
    weights = weights_bytes_per_node(ctx.sizing)
    count = len(ctx.nodes)
    seed = ctx.head.name
    seed_rate = links.fabric_of(seed)
    if links.site <= seed_rate:
        download = _step("weights download", weights, f"{SITE_LINK} to the hub", links.site)
    else:
        download = _step("weights download", weights, _port(seed), seed_rate)
    # The slowest port bounds the stream's copies and the image pulls: named where ports differ.
    slow_node, slow_rate = _slowest(ctx, links)
    uniform = len({links.fabric_of(n.name) for n in ctx.nodes}) == 1
    slow_link = CLUSTER_NETWORK if uniform else _port(slow_node)
    stream = _stream(weights, count, download, (slow_link, slow_rate))
    image_bytes = links.image_bytes or ctx.engine.image_bytes
    # N pulls at once: the site link carries N images, each node's port one.
    if count * image_bytes / links.site >= image_bytes / slow_rate:
        pull = _step("image pulls", image_bytes, f"{SITE_LINK} to the registry", links.site, count)
    else:
        pull = _step("image pulls", image_bytes, slow_link, slow_rate)
    steps = [download, stream, pull]
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
        stream=stream,
        image_pull=pull,
        weights_seconds=download.seconds + stream.seconds,
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
