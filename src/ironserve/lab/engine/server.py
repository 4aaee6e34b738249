"""The OpenAI-compatible HTTP API of the lab engine (stdlib threading server).

What a client sees of vLLM / SGLang, minus the model math: ``/health`` (no auth), ``/v1/models``,
``/v1/chat/completions`` and ``/v1/completions`` (``stream: true`` as server-sent events), and
``/metrics`` in Prometheus text with vLLM's metric names. The text is deterministic: words
derived from a hash of the prompt, so a test can tell two prompts apart and repeat one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .flags import version_key

WORDS = [
    "the",
    "cluster",
    "answers",
    "from",
    "the",
    "lab",
    "engine",
    "with",
    "deterministic",
    "words",
    "chosen",
    "by",
    "hashing",
    "each",
    "prompt",
    "so",
    "tests",
    "can",
    "compare",
    "replies",
    "across",
    "nodes",
    "and",
    "runs",
    "without",
    "any",
    "model",
    "math",
    "tokens",
    "flow",
    "through",
    "ray",
    "placement",
    "groups",
    "tensor",
    "pipeline",
    "parallel",
    "shards",
    "weights",
]
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)


@dataclass
class Settings:
    served_names: list[str]  # the first one is what /v1/models lists first
    root: str  # the model path
    max_model_len: int
    api_key: str | None
    engine: str = "vllm"  # vllm | sglang: error shapes and metric names follow it
    version: str = "0.11.0"
    token_delay: float = 0.0  # seconds between streamed tokens


def tokens(text: str) -> int:
    """A stand-in tokenizer: about one token per 4 characters, at least one."""
    return max(1, (len(text) + 3) // 4)


def reply(prompt: str, max_tokens: int) -> list[str]:
    """``max_tokens`` words picked by a hash of the prompt (same prompt, same words)."""
    seed = hashlib.sha256(prompt.encode()).digest()
    out = []
    for i in range(max_tokens):
        block = hashlib.sha256(seed + i.to_bytes(4, "little")).digest()
        out.append(WORDS[block[0] % len(WORDS)])
    return out


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1


class Metrics:
    """The counters behind /metrics (vLLM's names; labels as vLLM >= 0.10 prints them)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.running = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)

    def render(self) -> str:
        s = self.settings
        new = version_key(s.version) >= version_key("0.10.0")
        labels = (
            f'engine="0",model_name="{s.served_names[0]}"'
            if new
            else (f'model_name="{s.served_names[0]}"')
        )
        kv = "vllm:kv_cache_usage_perc" if new else "vllm:gpu_cache_usage_perc"
        with self.lock:
            usage = min(1.0, self.running * 0.01)
            lines = [
                "# HELP vllm:num_requests_running Number of requests in model execution batches.",
                "# TYPE vllm:num_requests_running gauge",
                f"vllm:num_requests_running{{{labels}}} {float(self.running)}",
                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
                "# TYPE vllm:num_requests_waiting gauge",
                f"vllm:num_requests_waiting{{{labels}}} 0.0",
                f"# HELP {kv} KV-cache usage. 1 means 100 percent usage.",
                f"# TYPE {kv} gauge",
                f"{kv}{{{labels}}} {usage}",
                "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
                "# TYPE vllm:prompt_tokens_total counter",
                f"vllm:prompt_tokens_total{{{labels}}} {float(self.prompt_tokens)}",
                "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
                "# TYPE vllm:generation_tokens_total counter",
                f"vllm:generation_tokens_total{{{labels}}} {float(self.generation_tokens)}",
                "# HELP vllm:request_success_total Count of successfully processed requests.",
                "# TYPE vllm:request_success_total counter",
                f'vllm:request_success_total{{{labels},finished_reason="length"}} '
                f"{float(self.success)}",
            ]
            for name, text, hist in (
                (
                    "vllm:time_to_first_token_seconds",
                    "Histogram of time to first token in seconds.",
                    self.ttft,
                ),
                (
                    "vllm:e2e_request_latency_seconds",
                    "Histogram of e2e request latency in seconds.",
                    self.e2e,
                ),
            ):
                lines += [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
                lines.append(f"{name}_sum{{{labels}}} {hist.total}")
                counts = hist.counts or [0] * len(hist.buckets)
                for bound, count in zip(hist.buckets, counts, strict=True):
                    lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {float(count)}')
                lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(hist.count)}')
                lines.append(f"{name}_count{{{labels}}} {float(hist.count)}")
        return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    server: EngineServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # vLLM's uvicorn access-log line; never the headers (they hold the key).
        print(
            f'INFO:     {self.client_address[0]} - "{self.requestline}" {args[1]}',
            file=sys.stderr,
            flush=True,
        )

    # -- plumbing
    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc).encode())

    def _error(self, status: int, message: str, kind: str) -> None:
        self._json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": status}}
        )

    def _authorized(self) -> bool:
        key = self.server.settings.api_key
        if not key:
            return True
        given = self.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), key.encode()):
            return True
        # vLLM's AuthenticationMiddleware answers exactly this.
        self._json(401, {"error": "Unauthorized"})
        return False

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        try:
            doc = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as error:
            self._error(400, f"invalid JSON body: {error}", "BadRequestError")
            return None
        if not isinstance(doc, dict):
            self._error(400, "the body must be a JSON object", "BadRequestError")
            return None
        return doc

    # -- routes
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send(200, b"", "application/json")
        elif path == "/metrics":
            self._send(
                200,
                self.server.metrics.render().encode(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        elif path == "/v1/models":
            if self._authorized():
                self._json(200, self._models())
        elif path == "/version":
            self._json(200, {"version": self.server.settings.version})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._json(404, {"detail": "Not Found"})
            return
        if not self._authorized():
            return
        body = self._body()
        if body is None:
            return
        chat = path == "/v1/chat/completions"
        model = body.get("model") or self.server.settings.served_names[0]
        if model not in self.server.settings.served_names:
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
            return
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                self._error(400, "messages: a non-empty list is required", "BadRequestError")
                return
            prompt = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            raw = body.get("prompt", "")
            prompt = "".join(raw) if isinstance(raw, list) else str(raw)
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 16
        prompt_tokens = tokens(prompt)
        room = self.server.settings.max_model_len - prompt_tokens
        if room <= 0 or int(limit) > room:
            self._error(
                400,
                f"This model's maximum context length is {self.server.settings.max_model_len} "
                f"tokens. However, you requested {int(limit) + prompt_tokens} tokens "
                f"({prompt_tokens} in the messages, {int(limit)} in the completion).",
                "BadRequestError",
            )
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        self._complete(
            chat,
            str(model),
            prompt,
            prompt_tokens,
            int(limit),
            bool(body.get("stream")),
            include_usage,
        )

    def _models(self) -> dict[str, Any]:
        s = self.server.settings
        created = int(self.server.started)
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": s.engine,
                    "root": s.root,
                    "parent": None,
                    "max_model_len": s.max_model_len,
                }
                for name in s.served_names
            ],
        }

    def _complete(
        self,
        chat: bool,
        model: str,
        prompt: str,
        prompt_tokens: int,
        limit: int,
        stream: bool,
        include_usage: bool = False,
    ) -> None:
        metrics = self.server.metrics
        started = time.monotonic()
        words = reply(prompt, limit)
        with metrics.lock:
            metrics.running += 1
        try:
            ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
            obj = "chat.completion" if chat else "text_completion"
            created = int(time.time())
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            }
            if stream:
                ttft = self._stream(chat, ident, obj, created, model, words, usage, include_usage)
            else:
                text = " ".join(words)
                ttft = time.monotonic() - started
                choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
                if chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                self._json(
                    200,
                    {
                        "id": ident,
                        "object": obj,
                        "created": created,
                        "model": model,
                        "choices": [choice],
                        "usage": usage,
                    },
                )
        finally:
            with metrics.lock:
                metrics.running -= 1
        with metrics.lock:
            metrics.prompt_tokens += prompt_tokens
            metrics.generation_tokens += len(words)
            metrics.success += 1
            metrics.ttft.observe(ttft)
            metrics.e2e.observe(time.monotonic() - started)

    def _stream(
        self,
        chat: bool,
        ident: str,
        obj: str,
        created: int,
        model: str,
        words: list[str],
        usage: dict[str, int],
        include_usage: bool,
    ) -> float:
        started = time.monotonic()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk_obj = "chat.completion.chunk" if chat else obj
        ttft = 0.0

        def event(choice: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
            doc = {
                "id": ident,
                "object": chunk_obj,
                "created": created,
                "model": model,
                "choices": [choice],
                **(extra or {}),
            }
            self.wfile.write(f"data: {json.dumps(doc)}\n\n".encode())
            self.wfile.flush()

        if chat:
            event(
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            )
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            last = i == len(words) - 1
            finish = "length" if last else None
            if chat:
                event({"index": 0, "delta": {"content": piece}, "finish_reason": finish})
            else:
                event({"index": 0, "text": piece, "finish_reason": finish, "logprobs": None})
            if i == 0:
                ttft = time.monotonic() - started
            if self.server.settings.token_delay and not last:
                time.sleep(self.server.settings.token_delay)
        if include_usage:  # stream_options.include_usage, as vLLM: a last chunk with no choices
            doc = {
                "id": ident,
                "object": chunk_obj,
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            self.wfile.write(f"data: {json.dumps(doc)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        return ttft


class EngineServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        super().__init__((host, port), Handler)
        self.settings = settings
        self.metrics = Metrics(settings)
        self.started = time.time()


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until killed, with vLLM's startup lines (a readiness wait may look for them)."""
    server = EngineServer(settings, host, port)
    print("INFO:     Started server process", file=sys.stderr, flush=True)
    print(
        f"INFO:     Uvicorn running on http://{host}:{port} (Press CTRL+C to quit)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
