"""A registry's answer is untrusted data that ends up in the nodes' command lines: only a digest of
the form ``sha256:<64 lower-case hex>`` is ever used, whatever a registry (or a mirror, possibly
over plain HTTP) answers in ``Docker-Content-Digest``."""

from __future__ import annotations

import pytest

from ironserve.serving import registry
from tests.serving.fake_registry import Registry, serve

GOOD = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "lie",
    [
        "sha256:0000;touch /tmp/ironserve-pwned;#",
        GOOD + ";touch /tmp/ironserve-pwned",
        GOOD + " x",
        "sha256:" + "A" * 64,
        "sha512:" + "a" * 128,
        "sha256:" + "a" * 63,
    ],
)
def test_a_malformed_digest_from_the_registry_is_never_used(lie: str) -> None:
    with serve(Registry()) as reg:
        reg.push("open-webui/open-webui", "v1")
        reg.lies["open-webui/open-webui"] = lie
        host = reg.url.removeprefix("http://")
        with pytest.raises(registry.ImageError) as caught:
            registry.resolve(f"{host}/open-webui/open-webui:v1")
    message = str(caught.value)
    assert "could not be resolved" in message and "is not sha256:<64 hex digits>" in message


def test_a_digest_with_a_trailing_newline_is_not_a_digest() -> None:
    assert registry.is_digest(GOOD)
    assert not registry.is_digest(GOOD + "\n")  # re's '$' matches before a final newline
    with pytest.raises(registry.ImageError, match="not a sha256 digest"):
        registry.parse_image(f"vllm/vllm-openai@{GOOD}\n")
