"""One streamed completion request, timed chunk by chunk (httpx, async).

The request goes to ``/v1/completions`` with ``stream: true``, ``ignore_eos`` (so the server
generates the asked-for length, as `vllm bench serve` does) and ``stream_options.include_usage``
(the server's own token counts when it reports them; else one token per content chunk).
"""

from __future__ import annotations

import json
import time

import httpx

from ironserve.bench.dataset import BenchRequest
from ironserve.bench.metrics import RequestResult


def request_body(model: str, request: BenchRequest) -> dict[str, object]:
    return {
        "model": model,
        "prompt": request.prompt,
        "max_tokens": request.output_len,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _events(line: str) -> dict[str, object] | None:
    """A server-sent event's JSON payload, or None for keep-alives and ``[DONE]``."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    doc = json.loads(payload)
    return doc if isinstance(doc, dict) else None


async def stream_completion(
    client: httpx.AsyncClient, base_url: str, model: str, request: BenchRequest
) -> RequestResult:
    """Send one request and time it; errors are recorded in the result, never raised."""
    result = RequestResult(sent=time.perf_counter(), prompt_tokens=request.input_len)
    chunks = 0
    try:
        async with client.stream(
            "POST", f"{base_url}/completions", json=request_body(model, request)
        ) as response:
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")[:200]
                result.error = f"HTTP {response.status_code}: {body}"
                return result
            async for line in response.aiter_lines():
                event = _events(line)
                if event is None:
                    continue
                choices = event.get("choices") or []
                text = choices[0].get("text", "") if isinstance(choices, list) and choices else ""
                if text:
                    now = time.perf_counter()
                    if result.first_token is None:
                        result.first_token = now
                    result.chunk_times.append(now)
                    chunks += 1
                usage = event.get("usage")
                if isinstance(usage, dict):
                    result.prompt_tokens = int(usage.get("prompt_tokens") or result.prompt_tokens)
                    result.output_tokens = int(usage.get("completion_tokens") or 0)
        result.done = time.perf_counter()
    except (httpx.HTTPError, json.JSONDecodeError, ValueError) as error:
        result.error = f"{type(error).__name__}: {error}"
        return result
    if result.output_tokens == 0:
        result.output_tokens = chunks
    result.ok = result.first_token is not None
    if not result.ok:
        result.error = "the stream carried no tokens"
    return result
