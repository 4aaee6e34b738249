"""Issue 17's pull-through image cache on @fake hosts: the cache container on the group's head
only (roles/image_cache), every node's daemon.json listing it (roles/container_runtime), the
engine image pulled through it, filled from the head before the parallel pulls (roles/engine),
and nothing at all on a converged second run. The pure rules (serving/image_cache.py) and the
validation of its keys before any SSH."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.command import FileUploadCommand
from pyinfra.context import ctx_host, ctx_state

from ironserve.config import build_cluster
from ironserve.config.inventory import HostRecord
from ironserve.deploy import context
from ironserve.errors import InputError
from ironserve.roles.container_runtime import deploy_container_runtime
from ironserve.roles.engine import deploy_engine
from ironserve.roles.engine.decide import decide
from ironserve.roles.image_cache import deploy_image_cache
from ironserve.serving import cache_warm, image_cache
from ironserve.serving.spec import LABEL_SPEC
from tests.deploys import nvidia_node as node
from tests.deploys.conftest import FakeRun
from tests.deploys.test_serve import (
    NAMES,
    VLLM,
    commands,
    converged,
    fake,
    op_names,
    registry_host,
    three_nodes,
    vllm_group,
)
from tests.serving.fake_registry import Registry, serve

CACHE = "10.9.0.1:5050"  # the head's address (three_nodes) and the default port
REGISTRY = "library/registry"


@pytest.fixture(autouse=True)
def _fresh_plans() -> None:
    context._RUNS.clear()


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    registry = Registry()
    with serve(registry) as running:
        running.push(VLLM, "v0.11.0")
        running.push(REGISTRY, "2.8.3")
        yield running


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("fake-key-0123456789\n")
    path.chmod(0o600)
    return path


def cached_group(reg: Registry, key_file: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return vllm_group(
        reg,
        key_file,
        tmp_path,
        image_cache_enabled=True,
        image_cache_image=f"{registry_host(reg)}/{REGISTRY}:2.8.3",
        **extra,
    )


def cache(upstream: str, address: str = "10.9.0.1") -> image_cache.ImageCache:
    return image_cache.ImageCache(
        head="n1", address=address, port=5050, storage="/c", upstream=upstream, image="r:2"
    )


# -- pure rules ---------------------------------------------------------------------------


def test_the_upstream_is_the_engine_images_registry() -> None:
    assert image_cache.upstream_of("vllm/vllm-openai:v0.11.0", []) == "https://registry-1.docker.io"
    assert image_cache.upstream_of("nvcr.io/nvidia/x:1", []) == "https://nvcr.io"
    assert (
        image_cache.upstream_of("10.0.0.4:5000/v/x:1", ["10.0.0.4:5000"]) == "http://10.0.0.4:5000"
    )


def test_docker_hub_images_keep_their_name_behind_the_mirror_others_are_addressed() -> None:
    pinned = "vllm/vllm-openai@sha256:" + "a" * 64
    hub = cache("https://registry-1.docker.io")
    assert image_cache.node_reference(pinned, hub) == pinned
    assert image_cache.daemon_settings(hub) == {
        "insecure-registries": [CACHE],
        "registry-mirrors": [f"http://{CACHE}"],
    }
    site = cache("https://nvcr.io")
    assert image_cache.node_reference("nvcr.io/nvidia/x@sha256:" + "b" * 64, site) == (
        f"{CACHE}/nvidia/x@sha256:" + "b" * 64
    )
    # No Docker Hub mirror that would answer Docker Hub names from another registry.
    assert image_cache.daemon_settings(site) == {"insecure-registries": [CACHE]}
    assert image_cache.node_reference(pinned, None) == pinned


def test_the_cache_container_proxies_its_upstream_from_the_heads_disk() -> None:
    spec = image_cache.container(cache("http://10.0.0.4:5000"), "ironserve-g-image-cache", "r@x")
    argv = spec.docker_run_argv()
    assert argv[:4] == ["docker", "run", "-d", "--name"]
    assert "--network" in argv and "host" in argv
    assert "/c:/var/lib/registry" in argv
    assert "REGISTRY_PROXY_REMOTEURL=http://10.0.0.4:5000" in argv
    assert f"REGISTRY_HTTP_ADDR={CACHE}" in argv
    assert argv[-1] == "r@x"


class Upstream:
    """A registry with one image (an index, its amd64 manifest, config and two layers) behind a
    Bearer challenge, its blobs redirected to another path (a CDN) that refuses the token."""

    def __init__(self) -> None:
        self.blobs = {_digest(b): b for b in (b'{"os":"linux"}', b"layer-1" * 1000, b"layer-2")}
        self.lie = False
        self.sent: list[str] = []
        config, *layers = list(self.blobs.items())
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "config": {"digest": config[0], "size": len(config[1])},
                "layers": [{"digest": d, "size": len(b)} for d, b in layers],
            }
        ).encode()
        index = json.dumps(
            {
                "manifests": [
                    {"digest": _digest(manifest), "platform": {"os": "linux", "architecture": a}}
                    for a in ("arm64", "amd64")
                ]
            }
        ).encode()
        self.manifests = {_digest(manifest): manifest, _digest(index): index}
        self.index = _digest(index)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/token":
                    return self._send(200, b'{"token": "t0k"}')
                if path.startswith("/cdn/"):
                    if "Authorization" in self.headers:
                        return self._send(400, b"only one auth mechanism")
                    body = upstream.blobs[path.removeprefix("/cdn/")]
                    upstream.sent.append(path.removeprefix("/cdn/"))
                    return self._send(200, b"x" + body[1:] if upstream.lie else body)
                if self.headers.get("Authorization") != "Bearer t0k":
                    realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
                    challenge = f'Bearer realm="{realm}",service="reg"'
                    return self._send(401, WWW_Authenticate=challenge)
                kind, digest = path.split("/")[-2:]
                if kind == "manifests":
                    return self._send(200, upstream.manifests[digest])
                cdn = f"http://localhost:{self.server.server_address[1]}"  # another host
                return self._send(307, Location=f"{cdn}/cdn/{digest}")

        return Handler


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    fake_upstream = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake_upstream.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake_upstream, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_the_fill_reads_each_blob_once_checked_into_the_caches_layout(
    upstream: tuple[Upstream, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_upstream, url = upstream
    monkeypatch.setattr(cache_warm.platform, "machine", lambda: "x86_64")
    read = cache_warm.fill(url, VLLM, fake_upstream.index, tmp_path)
    assert read == sum(len(b) for b in fake_upstream.blobs.values())
    assert sorted(fake_upstream.sent) == sorted(fake_upstream.blobs)  # each blob once
    for digest, body in fake_upstream.blobs.items():
        hexa = digest.removeprefix("sha256:")
        layout = tmp_path / "docker/registry/v2"
        assert (layout / f"blobs/sha256/{hexa[:2]}/{hexa}/data").read_bytes() == body
        link = layout / f"repositories/{VLLM}/_layers/sha256/{hexa}/link"
        assert link.read_text() == digest
    # A second fill reads nothing: the cache holds every blob.
    assert cache_warm.fill(url, VLLM, fake_upstream.index, tmp_path) == 0
    assert len(fake_upstream.sent) == len(fake_upstream.blobs)


def test_the_fill_places_no_blob_the_upstream_altered(
    upstream: tuple[Upstream, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_upstream, url = upstream
    fake_upstream.lie = True
    monkeypatch.setattr(cache_warm.platform, "machine", lambda: "x86_64")
    with pytest.raises(SystemExit, match="other bytes"):
        cache_warm.fill(url, VLLM, fake_upstream.index, tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing placed, no leftover


# -- validation before SSH ----------------------------------------------------------------

GROUP = {
    "model_id": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "engine_kind": "vllm",
    "accelerator_kind": "h100-80g",
    "accelerator_count": 1,
    "network_socket_ifname": "eth0",
}


def _problems(*records: HostRecord) -> list[tuple[str, str, str]]:
    with pytest.raises(InputError) as caught:
        build_cluster(list(records))
    return [(p.host, p.field, p.message) for p in caught.value.problems]


def test_the_cache_settings_are_validated_and_one_per_group() -> None:
    head = {**GROUP, "node_role": "head", "node_ip": "10.20.0.10"}
    worker = {**GROUP, "node_role": "worker", "node_ip": "10.20.0.11"}
    (found,) = _problems(HostRecord("n0", (), {**head, "image_cache_port": 80}))
    assert found[:2] == ("n0", "image_cache_port")
    (found,) = _problems(HostRecord("n0", (), {**head, "image_cache_dir": "../x"}))
    assert found[:2] == ("n0", "image_cache_dir")
    (found,) = _problems(
        HostRecord("n0", (), {**head, "image_cache_enabled": True, "engine_port": 5050})
    )
    assert found[:2] == ("n0", "engine_port") and "image cache" in found[2]
    (found,) = _problems(
        HostRecord("n0", (), {**head, "image_cache_enabled": True}), HostRecord("n1", (), worker)
    )
    assert found[:2] == ("n1", "image_cache_enabled") and "same on every node" in found[2]
    assert build_cluster(
        [
            HostRecord("n0", (), {**head, "image_cache_enabled": True}),
            HostRecord("n1", (), {**worker, "image_cache_enabled": True}),
        ]
    )


# -- roles/container_runtime --------------------------------------------------------------


def _runtime(extra: dict[str, Any], daemon_json: dict[str, Any]) -> FakeRun:
    responses = node.responses(True, **{"/etc/docker/daemon.json": [json.dumps(daemon_json)]})
    data = {**node.HOST_DATA, **extra, "fake_responses": responses}
    run = FakeRun([("@fake/h100-a", data)], {})
    run.prepare(deploy_container_runtime)
    return run


def _written(run: FakeRun) -> dict[str, Any] | None:
    """The daemon.json the run would upload (None: it leaves daemon.json alone)."""
    host = run.state.inventory.get_host("@fake/h100-a")
    for op_hash in run.state.get_op_order():
        data = run.state.ops.get(host, {}).get(op_hash)
        if data is None:
            continue
        with ctx_state.use(run.state), ctx_host.use(host):
            for cmd in data.command_generator():
                if isinstance(cmd, FileUploadCommand) and cmd.dest == "/etc/docker/daemon.json":
                    return dict(json.loads(cmd.src.getvalue()))
    return None


def _restarts(run: FakeRun) -> bool:
    names = [", ".join(run.state.get_op_meta(h).names) for h in run.state.get_op_order()]
    return any("Restart Docker" in name for name in names)


def test_every_node_lists_the_cache_and_a_second_run_changes_nothing() -> None:
    first = _runtime({"image_cache_enabled": True}, node.provisioned_daemon_json())
    written = _written(first)
    assert written is not None and _restarts(first)
    # The engine image is Docker Hub's (the default vLLM image): the cache is also its mirror.
    assert written["insecure-registries"] == [f"{node.NODE_IP}:5050"]
    assert written["registry-mirrors"] == [f"http://{node.NODE_IP}:5050"]
    assert written["default-runtime"] == "nvidia"  # merged, not clobbered
    second = _runtime({"image_cache_enabled": True}, written)
    assert _written(second) is None and not _restarts(second)
    # The site's own registries stay, the cache is added beside them.
    site = _runtime(
        {"image_cache_enabled": True, "container_runtime_insecure_registries": ["reg.site:5000"]},
        node.provisioned_daemon_json(),
    )
    assert (_written(site) or {})["insecure-registries"] == [
        "reg.site:5000",
        f"{node.NODE_IP}:5050",
    ]
    # Off (the default): nothing of the cache, nothing to do on a provisioned node.
    off = _runtime({}, node.provisioned_daemon_json())
    assert _written(off) is None and not _restarts(off)


# -- roles/image_cache and roles/engine through it ----------------------------------------


def serve_part() -> None:
    """deploys/serve.py's order: the cache, then the engine."""
    deploy_image_cache()
    deploy_engine()


def test_the_head_runs_the_cache_and_every_node_pulls_through_it(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    run = fake(three_nodes(), cached_group(reg, key_file, tmp_path), deploy=serve_part)
    group = decide(run.state)["default"]
    digest = reg.push(VLLM, "v0.11.0")
    # The digest resolved from the upstream; the nodes pull it from the head's cache.
    assert group.image == f"{CACHE}/{VLLM}@{digest}"
    head = commands(run, NAMES[0])
    names = [label for label, _ in head]
    assert names[:5] == [
        "Image cache | Image cache storage folder",
        "Image cache | Pull the image cache by digest",
        "Image cache | Start the image cache",
        "Image cache | Wait until the image cache answers",
        "Engine state folder (0700)",
    ]
    ops = dict(head)
    (start,) = ops["Image cache | Start the image cache"]
    assert f"REGISTRY_PROXY_REMOTEURL={reg.url}" in start
    assert f"{registry_host(reg)}/{REGISTRY}@sha256:" in start
    (fill,) = ops["Fill the image cache with the engine image (on the head)"]
    assert fill == (
        f"python3 /etc/ironserve/cache_warm.py {reg.url} {VLLM} {digest} "
        "/var/lib/ironserve/image-cache"
    )
    assert ops["Pull the engine image by digest (every node in parallel)"] == [
        f"docker pull -q {group.image}"
    ]
    assert f" {group.image} " in ops["Start the head's engine container"][0]
    for name in NAMES[1:]:
        worker = op_names(run, name)
        assert not any(label.startswith("Image cache") for label in worker)
        assert "Fill the image cache with the engine image (on the head)" not in worker
        assert "Pull the engine image by digest (every node in parallel)" in worker
    order = [", ".join(run.state.get_op_meta(h).names) for h in run.state.get_op_order()]
    assert (
        order.index("Image cache | Wait until the image cache answers")
        < order.index("Engine | Fill the image cache with the engine image (on the head)")
        < order.index("Engine | Pull the engine image by digest (every node in parallel)")
    )


def test_a_converged_group_with_its_cache_gets_no_operation(
    reg: Registry, key_file: Path, tmp_path: Path
) -> None:
    data = cached_group(reg, key_file, tmp_path)
    first = fake(three_nodes(), data)
    group = decide(first.state)["default"]
    responses = converged(group)
    context._RUNS.clear()
    # The head's cache container runs with the spec a first run starts it with.
    probe = fake(three_nodes(), data, deploy=deploy_image_cache)
    (start,) = dict(commands(probe, NAMES[0]))["Image cache | Start the image cache"]
    (label,) = re.findall(rf"{LABEL_SPEC}=([0-9a-f]+)", start)
    context._RUNS.clear()
    cache_inspect = {
        "Labels": {LABEL_SPEC: label},
        "State": {"Running": True, "Status": "running"},
        "RestartCount": 0,
    }
    # The cache's container fact first (matchers are tried in order): on the head only.
    cache_fact = re.compile(r"docker inspect --type container .*image-cache")
    for name in NAMES:
        found = ["@@inspect", json.dumps(cache_inspect)] if name == NAMES[0] else []
        responses[name] = {cache_fact: found, **responses[name]}

    again = fake(three_nodes(), data, responses=responses, deploy=serve_part)
    # (The fake facts do not cover folders and the env file, as in tests/deploys/test_serve.py.)
    for name in NAMES:
        left = [op for op in op_names(again, name) if "folder" not in op and "env file" not in op]
        assert left == [], name
