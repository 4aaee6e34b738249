# ruff: noqa: E501 -- access log lines as distribution writes them
"""The lab registry's byte counter (lab/registry.py ``served_bytes``): the bytes of successful blob
GETs of one repository in distribution's access log (gorilla's combined format), nothing else."""

from __future__ import annotations

from ironserve.lab.registry import served_bytes

LOG = """\
time="2026-12-03T14:50:00Z" level=warning msg="No HTTP secret provided"
10.9.0.2 - - [03/Dec/2026:14:50:01 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "docker/26.1.5"
10.9.0.2 - - [03/Dec/2026:14:50:01 +0000] "GET /v2/vllm/vllm-openai/manifests/sha256:aa HTTP/1.1" 200 1570 "" "docker/26.1.5"
10.9.0.2 - - [03/Dec/2026:14:50:02 +0000] "GET /v2/vllm/vllm-openai/blobs/sha256:c1 HTTP/1.1" 200 7023 "" "Python-urllib/3.11"
10.9.0.2 - - [03/Dec/2026:14:50:03 +0000] "GET /v2/vllm/vllm-openai/blobs/sha256:l1 HTTP/1.1" 200 104857600 "" "Python-urllib/3.11"
10.9.0.2 - - [03/Dec/2026:14:50:03 +0000] "HEAD /v2/vllm/vllm-openai/blobs/sha256:l1 HTTP/1.1" 200 0 "" "docker/26.1.5"
10.9.0.3 - - [03/Dec/2026:14:50:04 +0000] "GET /v2/vllm/vllm-openai/blobs/sha256:zz HTTP/1.1" 404 157 "" "docker/26.1.5"
10.9.0.3 - - [03/Dec/2026:14:50:04 +0000] "GET /v2/ironserve-lab/registry/blobs/sha256:r1 HTTP/1.1" 200 5000 "" "docker/26.1.5"
172.18.0.1 - - [03/Dec/2026:14:50:05 +0000] "PUT /v2/vllm/vllm-openai/blobs/uploads/x HTTP/1.1" 201 0 "" "docker/26.1.5"
"""


def test_only_successful_blob_gets_of_the_repository_count() -> None:
    assert served_bytes(LOG, "vllm/vllm-openai") == 7023 + 104857600
    assert served_bytes(LOG, "vllm/vllm-openai", kind="manifests") == 1570
    assert served_bytes(LOG, "ironserve-lab/registry") == 5000
    assert served_bytes(LOG, "vllm/vllm") == 0
