"""ironserve.serving: image references and digest resolution against a loopback registry, the API
key files, `ray status` in every layout Ray has printed, and the progress-aware readiness rule."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ironserve.serving import apikey, ray_status, readiness, registry
from tests.serving.fake_registry import Registry, serve

RAY = Path(__file__).resolve().parents[1] / "fixtures" / "ray"


# --- image references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("vllm/vllm-openai:v0.11.0", ("docker.io", "vllm/vllm-openai", "v0.11.0", None)),
        ("ubuntu", ("docker.io", "library/ubuntu", None, None)),
        (
            "172.30.1.4:5000/vllm/vllm-openai:v0.11.0",
            ("172.30.1.4:5000", "vllm/vllm-openai", "v0.11.0", None),
        ),
        ("localhost/x/y", ("localhost", "x/y", None, None)),
        (
            "harbor.vastaitech.com/ai_deliver/vllm_vacc:AI3.2_GR_1202",
            ("harbor.vastaitech.com", "ai_deliver/vllm_vacc", "AI3.2_GR_1202", None),
        ),
        (
            "reg:5000/a/b@sha256:" + "a" * 64,
            ("reg:5000", "a/b", None, "sha256:" + "a" * 64),
        ),
    ],
)
def test_image_references_split_as_docker_does(ref: str, expected: tuple[object, ...]) -> None:
    image = registry.parse_image(ref)
    assert (image.registry, image.repository, image.tag, image.digest) == expected


def test_a_bad_digest_or_upper_case_is_refused() -> None:
    with pytest.raises(registry.ImageError, match="not a sha256 digest"):
        registry.parse_image("a/b@sha256:xyz")
    with pytest.raises(registry.ImageError, match="lower case"):
        registry.parse_image("Vllm/Vllm:1")


def test_docker_hub_images_ask_the_mirrors_first_others_their_own_registry() -> None:
    hub = registry.parse_image("vllm/vllm-openai:v1")
    assert registry.endpoints(hub, [], ["http://10.0.0.4:5000/"]) == [
        "http://10.0.0.4:5000",
        "https://registry-1.docker.io",
    ]
    own = registry.parse_image("10.0.0.4:5000/vllm/vllm-openai:v1")
    assert registry.endpoints(own, ["10.0.0.4:5000"], []) == ["http://10.0.0.4:5000"]
    assert registry.endpoints(own, [], []) == ["https://10.0.0.4:5000"]
    local = registry.parse_image("127.0.0.1:5000/x:1")
    assert registry.endpoints(local, [], []) == ["http://127.0.0.1:5000"]


def test_resolve_pins_the_tag_to_the_registrys_digest() -> None:
    with serve(Registry()) as reg:
        digest = reg.push("vllm/vllm-openai", "v0.11.0")
        host = reg.url.removeprefix("http://")
        pinned = registry.resolve(f"{host}/vllm/vllm-openai:v0.11.0")
        assert pinned == f"{host}/vllm/vllm-openai@{digest}"
        method, path, headers = reg.requests[-1]
        assert (method, path) == ("HEAD", "/v2/vllm/vllm-openai/manifests/v0.11.0")
        accept = headers["Accept"]
        for media in registry.MANIFEST_TYPES:  # multi-arch indexes and single manifests
            assert media in accept
        # Already pinned: checked to exist, and kept.
        assert registry.resolve(pinned) == pinned


def test_resolve_follows_a_bearer_challenge_and_falls_back_to_get_for_the_digest() -> None:
    with serve(Registry(token="t0k", digest_on_head=False)) as reg:
        digest = reg.push("library/ubuntu", "24.04")
        host = reg.url.removeprefix("http://")
        assert registry.resolve(f"{host}/library/ubuntu:24.04") == f"{host}/library/ubuntu@{digest}"
        assert any(path.startswith("/token?") for _, path, _ in reg.requests)
        assert reg.requests[-1][:2] == ("GET", "/v2/library/ubuntu/manifests/24.04")


def test_a_missing_image_is_a_clear_error_naming_the_registry() -> None:
    with serve(Registry()) as reg:
        reg.push("vllm/vllm-openai", "v0.11.0")
        host = reg.url.removeprefix("http://")
        with pytest.raises(registry.ImageError) as caught:
            registry.resolve(f"{host}/vllm/vllm-openai:v9.9.9")
    message = str(caught.value)
    assert f"{host}/vllm/vllm-openai:v9.9.9 is not in its registry" in message
    assert "not found" in message and "Nothing was changed on the nodes" in message
    assert "push the image there" in message


def test_an_unreachable_registry_is_not_called_missing() -> None:
    with pytest.raises(registry.ImageError, match="could not be resolved") as caught:
        registry.resolve("127.0.0.1:9/x:1", timeout=2)
    assert "reaches the registry" in str(caught.value)


def test_a_pinned_digest_the_registry_does_not_have_is_refused() -> None:
    with serve(Registry()) as reg:
        reg.push("a/b", "1")
        host = reg.url.removeprefix("http://")
        with pytest.raises(registry.ImageError, match="not in its registry"):
            registry.resolve(f"{host}/a/b@sha256:{'0' * 64}")


# --- API keys ---------------------------------------------------------------------------------


def test_key_files_hold_the_key_alone_or_as_an_env_line(tmp_path: Path) -> None:
    assert apikey.parse_key("abc\n") == "abc"
    assert apikey.parse_key("# comment\nVLLM_API_KEY=abc\n") == "abc"
    path = tmp_path / "key"
    path.write_text("VLLM_API_KEY=s3cret\n")
    path.chmod(0o600)
    assert apikey.read_key(path) == "s3cret"


def test_a_key_file_readable_by_others_or_empty_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    with pytest.raises(apikey.ApiKeyError, match="mode 0644; a file holding the API key must"):
        apikey.read_key(path)
    path.chmod(0o600)
    path.write_text("\n")
    with pytest.raises(apikey.ApiKeyError, match="holds no API key"):
        apikey.read_key(path)


def _key_location(directory: Path, addresses: list[str]) -> Any:
    from ironserve.plan.derived import ApiKeyLocation

    path = apikey.generated_key_path(str(directory), "g", addresses)
    return ApiKeyLocation(
        control_file=str(path),
        generated=True,
        node_file="/etc/ironserve/g/secrets.env",
        enforced=True,
    )


def test_a_group_without_a_key_file_gets_one_generated_once(tmp_path: Path) -> None:
    where = _key_location(tmp_path / "keys", ["10.0.0.2", "10.0.0.1"])
    with pytest.raises(apikey.ApiKeyError, match="no deploy from this machine"):
        apikey.read_plan_key(where)  # readers never generate one
    key, path, made = apikey.ensure_plan_key(where)
    assert made and path.parent == tmp_path / "keys" and len(key) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = apikey.ensure_plan_key(_key_location(tmp_path / "keys", ["10.0.0.1", "10.0.0.2"]))
    assert again == (key, path, False) and apikey.read_plan_key(where) == key
    other = apikey.ensure_plan_key(_key_location(tmp_path / "keys", ["10.0.0.9"]))
    assert other[0] != key and other[1] != path


def test_the_env_file_carries_the_key_for_vllm_and_sglang() -> None:
    env = apikey.secrets_env("k3y")
    assert env == "VLLM_API_KEY=k3y\nIRONSERVE_API_KEY=k3y\n"
    assert "k3y" not in apikey.secrets_revision("g", env)
    assert apikey.secrets_revision("g", env) != apikey.secrets_revision(
        "g", apikey.secrets_env("x")
    )


# --- ray status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "nodes", "gpus", "used", "layout"),
    [
        ("c1-active-total-usage.gh200x8.txt", 2, 8.0, 0.0, "active"),
        ("c2-active-total-usage.r9700x2.txt", 2, 2.0, 0.0, "active"),
        ("c3-idle-section.txt", 3, 0.0, 0.0, "active"),
        ("b1-active-usage.16gpu.txt", 2, 16.0, 0.0, "active"),
        ("b2-active-usage-placement-groups.2080tix16.txt", 2, 16.0, 16.0, "active"),
        ("b3-active-usage.ray2.24.txt", 2, 2.0, 0.0, "active"),
        ("a1-healthy.a100x32.txt", 4, 32.0, 0.0, "healthy"),
        ("a3-healthy-verbose.cpu.txt", 3, 0.0, 0.0, "healthy"),
        ("a4-healthy-pending-failures.txt", 22, 2.0, 2.0, "healthy"),
        ("lab-ray2.60-verbose.txt", 1, 2.0, 0.0, "active"),
    ],
)
def test_ray_status_in_every_layout(
    fixture: str, nodes: int, gpus: float, used: float, layout: str
) -> None:
    status = ray_status.parse((RAY / fixture).read_text())
    assert (status.nodes, status.gpus, status.gpus_used, status.layout) == (
        nodes,
        gpus,
        used,
        layout,
    )


def test_no_cluster_status_yet_is_zero_nodes() -> None:
    text = "No cluster status. It may take a few seconds for the Ray internal services to start up."
    assert ray_status.parse(text) == ray_status.RayStatus(0, 0.0, 0.0, "none")


def test_the_nodes_probe_names_the_missing_node() -> None:
    out = (
        'warning: noise\n[{"address": "10.0.0.1", "gpus": 2.0}, {"address": "10.0.0.2", "gpus": 1}]'
    )
    alive = ray_status.parse_nodes_probe(out)
    planned = {"n1": ("10.0.0.1", 2.0), "n2": ("10.0.0.2", 2.0), "n3": ("10.0.0.3", 2.0)}
    assert ray_status.missing(planned, alive) == [
        ("n2", "10.0.0.2", "1 of 2 GPUs in Ray"),
        ("n3", "10.0.0.3", "not in the Ray cluster"),
    ]
    with pytest.raises(ValueError, match="no node list"):
        ray_status.parse_nodes_probe("Traceback: ConnectionError")


# --- readiness ---------------------------------------------------------------------------------

LOAD = "Loading safetensors checkpoint shards:  {p}% Completed | {n}/163 [00:10<20:00,  0.1it/s]"


def test_a_slow_load_that_prints_progress_is_waited_for() -> None:
    watch = readiness.LoadWatch(started=0.0, stall_s=600, total_s=7200)
    for minute in range(0, 45):  # 45 minutes of loading, a line every minute
        now = minute * 60.0
        assert watch.observe(now, LOAD.format(p=minute * 2, n=minute * 3))
        watch.verdict(now, "n1")
    assert readiness.progress_of(watch.last_log or "") == (
        "Loading safetensors checkpoint shards:  88% Completed | 132/163"
    )


def test_a_stalled_log_fails_after_the_stall_limit_quoting_the_last_line() -> None:
    watch = readiness.LoadWatch(started=0.0, stall_s=600, total_s=7200)
    log = "INFO start\n" + LOAD.format(p=12, n=20)
    watch.observe(0.0, log)
    watch.observe(300.0, log)
    watch.verdict(599.0, "n1")  # not yet
    watch.observe(650.0, log)
    with pytest.raises(readiness.NotReady) as caught:
        watch.verdict(650.0, "n1: http://x/health")
    message = str(caught.value)
    assert "has not moved for 650 s" in message and "12% Completed | 20/163" in message


def test_the_total_limit_holds_even_for_a_log_that_keeps_moving() -> None:
    watch = readiness.LoadWatch(started=0.0, stall_s=600, total_s=1000)
    watch.observe(999.0, LOAD.format(p=99, n=161))
    watch.verdict(999.0, "n1")
    watch.observe(1000.0, LOAD.format(p=99, n=162))
    with pytest.raises(readiness.NotReady, match=r"not ready after 1000 s .*162/163"):
        watch.verdict(1000.0, "n1")


def test_apikey_write_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k"
    apikey.write_new_key(path)
    with pytest.raises(FileExistsError):
        apikey.write_new_key(path)
    assert os.stat(path).st_mode & 0o077 == 0


def test_engine_logs_quoted_in_output_hide_the_key() -> None:
    line = "server_args=ServerArgs(model_path='/m', api_key='sk-abc', port=30000)"
    assert apikey.redact(line, "sk-abc") == (
        "server_args=ServerArgs(model_path='/m', api_key='<secret>', port=30000)"
    )
    assert apikey.redact(line, "") == line
