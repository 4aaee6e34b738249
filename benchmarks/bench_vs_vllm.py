"""`ironserve bench` against the real `vllm bench serve`, on the same lab endpoint and settings.

The lab's real vLLM (`make demo`: SmolLM2-135M-Instruct, TP 1 x PP 3 over 3 labgpu nodes) is
measured by both clients in alternating rounds, with the same settings: random dataset, input
and output lengths, number of prompts, concurrency, every request sent at once (request rate
inf), seed 0, ignore_eos. `vllm bench serve` is the one shipped in the same vLLM (run in a
container of the lab's real vLLM image on the lab network, with the model's tokenizer); the API
key reaches both through the environment, never a command line.

The two random datasets differ in kind: vLLM's draws token ids, so its prompts are exactly the
input length in tokens; ironserve's draws words, so the script converts the input length to words
with the endpoint's own /tokenize (tokens per word of ironserve's prompts), and prints both
clients' mean prompt tokens so the TTFTs are compared on equal prefills.

    .venv/bin/python benchmarks/bench_vs_vllm.py [--lab-dir DIR] [--rounds 2] [--concurrency 4]

vLLM's own histograms (`/metrics`, scraped before and after every run) say how fast the engine
was in each client's window: the script prints, per client, its mean ITL and TTFT over the
server's for the same window (1.00: the client measures what the engine did), and the medians
of the server's means. On a 2-core machine the engine's speed moves by a quarter between two runs
of the same client; the server columns show when a ratio is the engine's, not the client's.

Uses a served lab at --lab-dir (default: $IRONSERVE_LAB_DIR, else .lab/) or brings up its own
(3 x labgpu, deploys/site.py) and removes it afterwards. Prints the medians side by side with
their ratios (ironserve / vllm); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
BIN = Path(sys.executable).parent

from ironserve.bench.dataset import random_requests  # noqa: E402
from ironserve.facts.metrics import histogram_totals, parse_prometheus  # noqa: E402
from ironserve.lab import cluster, images, real_model, vllm_image  # noqa: E402
from ironserve.lab import state as st  # noqa: E402

INVENTORY = "inventories/lab.py"
METRICS = ("median_ttft_ms", "median_tpot_ms", "median_itl_ms", "output_throughput")
# The engine's view of one window: vLLM's histograms (seconds), read as means in milliseconds.
SERVER = {
    "server_mean_ttft_ms": "vllm:time_to_first_token_seconds",
    "server_mean_itl_ms": "vllm:inter_token_latency_seconds",
}


def log(message: str) -> None:
    print(f"[bench-vs-vllm] {message}", file=sys.stderr, flush=True)


def served_lab(directory: Path) -> dict[str, Any] | None:
    doc = cluster.status(directory)
    return doc if doc and doc.get("endpoint") else None


def bring_up(directory: Path) -> dict[str, Any]:
    cluster.up(nodes=3, profile="labgpu", light=False, directory=directory)
    env = {**os.environ, "IRONSERVE_LAB_DIR": str(directory)}
    done = subprocess.run(
        [str(BIN / "pyinfra"), "-y", INVENTORY, "deploys/site.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"site.py failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    doc = served_lab(directory)
    assert doc is not None
    return doc


def server_means(base: str, key: str, run: Any) -> dict[str, Any]:
    """Run ``run()`` and return its result with vLLM's own means over the same window."""

    def scrape() -> list[Any]:
        # Through the gateway, which wants the key on /metrics from outside the group.
        answer = httpx.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        return parse_prometheus(answer.raise_for_status().text)

    before = scrape()
    result: dict[str, Any] = run()
    after = scrape()
    for key, family in SERVER.items():
        (c0, s0), (c1, s1) = histogram_totals(before, family), histogram_totals(after, family)
        result[key] = 1000 * (s1 - s0) / (c1 - c0) if c1 > c0 else float("nan")
    return result


def _over_engine(run: dict[str, Any], metric: str) -> float:
    """The client's mean of ``metric`` (ttft, itl) over the engine's for the same window."""
    return float(run[f"mean_{metric}_ms"] / run[f"server_mean_{metric}_ms"])


def api_key(doc: dict[str, Any]) -> str:
    return Path(doc["api_key_file"]).read_text().strip().split("=", 1)[-1]


def words_for(doc: dict[str, Any], model: str, tokens: int, key: str) -> tuple[int, float]:
    """Words of ironserve's dataset that make ``tokens`` prompt tokens on this endpoint."""
    sample = random_requests(8, 256, 1, seed=0)
    base = doc["endpoint"].removesuffix("/v1")
    counts = [
        len(
            httpx.post(
                f"{base}/tokenize",
                json={"model": model, "prompt": r.prompt, "add_special_tokens": False},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ).json()["tokens"]
        )
        for r in sample
    ]
    per_word = sum(counts) / sum(r.input_len for r in sample)
    return max(1, round(tokens / per_word)), per_word


def run_ironserve(directory: Path, args: argparse.Namespace, words: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            *(str(BIN / "ironserve"), "bench", "-i", INVENTORY, "--json"),
            *("--concurrency", str(args.concurrency), "--num-prompts", str(args.num_prompts)),
            *("--input-len", str(words), "--output-len", str(args.output_len), "--seed", "0"),
        ],
        cwd=ROOT,
        env={**os.environ, "IRONSERVE_LAB_DIR": str(directory)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"ironserve bench failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    level = json.loads(done.stdout)["levels"][0]
    level["mean_input_tokens"] = level["total_input_tokens"] / level["completed"]
    return dict(level)


def run_vllm(
    doc: dict[str, Any], model: str, key: str, args: argparse.Namespace, client: Any
) -> dict[str, Any]:
    head = doc["endpoint"].removesuffix("/v1")
    image = vllm_image.ensure(client, images.ensure_images(client).base)
    out = Path(tempfile.mkdtemp(prefix="ironserve-vllm-bench-"))
    argv = [
        *("bench", "serve", "--backend", "openai", "--base-url", head),
        *("--endpoint", "/v1/completions", "--model", model, "--tokenizer", "/model"),
        *("--dataset-name", "random", "--random-input-len", str(args.input_len)),
        *("--random-output-len", str(args.output_len), "--random-range-ratio", "0"),
        *("--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.concurrency)),
        *("--request-rate", "inf", "--seed", "0", "--ignore-eos"),
        *("--percentile-metrics", "ttft,tpot,itl,e2el"),
        *("--save-result", "--result-dir", "/out", "--result-filename", "result.json"),
    ]
    container = client.containers.run(
        image,
        argv,
        entrypoint=["vllm"],
        environment={"OPENAI_API_KEY": key, "HF_HUB_OFFLINE": "1"},
        network=doc["network"]["name"],
        volumes={
            str(real_model.model_dir()): {"bind": "/model", "mode": "ro"},
            str(out): {"bind": "/out", "mode": "rw"},
        },
        detach=True,
    )
    try:
        if container.wait(timeout=1800)["StatusCode"] != 0:
            raise SystemExit(f"vllm bench serve failed:\n{container.logs().decode()[-3000:]}")
    finally:
        container.remove(force=True)
    result = json.loads((out / "result.json").read_text())
    result["mean_input_tokens"] = result["total_input_tokens"] / result["completed"]
    return dict(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--lab-dir", type=Path, default=st.lab_dir())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--num-prompts", type=int, default=48)
    parser.add_argument("--input-len", type=int, default=64, help="prompt tokens")
    parser.add_argument("--output-len", type=int, default=32)
    args = parser.parse_args()
    client = cluster.connect()
    directory = args.lab_dir.resolve()
    doc = served_lab(directory)
    own = doc is None
    if own:
        directory = Path(tempfile.mkdtemp(prefix="ironserve-bench-vs-vllm-"))
        log(f"no served lab at {args.lab_dir}: bringing up 3 x labgpu in {directory}")
        doc = bring_up(directory)
    assert doc is not None
    try:
        key = api_key(doc)
        model = httpx.get(
            f"{doc['endpoint']}/models", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).json()["data"][0]["id"]
        words, per_word = words_for(doc, model, args.input_len, key)
        log(f"{model} at {doc['endpoint']}: {per_word:.2f} tokens per word -> {words} words")
        head = doc["endpoint"].removesuffix("/v1")
        runs: dict[str, list[dict[str, Any]]] = {"ironserve": [], "vllm": []}
        for round_ in range(args.rounds):
            started = time.monotonic()
            runs["ironserve"].append(
                server_means(head, key, lambda: run_ironserve(directory, args, words))
            )
            runs["vllm"].append(
                server_means(head, key, lambda: run_vllm(doc, model, key, args, client))
            )
            for name, done in runs.items():
                log(
                    f"round {round_ + 1} {name}: client mean ITL {done[-1]['mean_itl_ms']:.1f} ms,"
                    f" engine's {done[-1]['server_mean_itl_ms']:.1f} ms"
                )
            log(f"round {round_ + 1}/{args.rounds} in {time.monotonic() - started:.0f}s")
    finally:
        if own:
            cluster.down(directory)
    summary: dict[str, Any] = {}
    print(f"{'metric':22s} {'ironserve':>10s} {'vllm':>10s} {'ratio':>7s}")
    for metric in (*METRICS, "mean_input_tokens", *SERVER):
        ours = statistics.median(r[metric] for r in runs["ironserve"])
        theirs = statistics.median(r[metric] for r in runs["vllm"])
        ratio = ours / theirs if theirs else float("nan")
        summary[metric] = {
            "ironserve": round(ours, 3),
            "vllm": round(theirs, 3),
            "ratio": round(ratio, 3),
        }
        print(f"{metric:22s} {ours:10.2f} {theirs:10.2f} {ratio:7.3f}")
    worst = max(abs(summary[m]["ratio"] - 1) for m in METRICS)
    # Each client's mean over the engine's for the same windows: 1.00 is an exact measurement.
    agreement: dict[str, dict[str, float]] = {}
    for name, done in runs.items():
        agreement[name] = {
            m: round(statistics.median(_over_engine(r, m) for r in done), 3)
            for m in ("ttft", "itl")
        }
        tpots = [r["median_tpot_ms"] for r in done]
        print(
            f"{name}: client/engine mean TTFT {agreement[name]['ttft']:.3f}, mean ITL"
            f" {agreement[name]['itl']:.3f}; median TPOT {min(tpots):.1f}..{max(tpots):.1f} ms"
        )
    print(
        json.dumps(
            {
                "model": model,
                "concurrency": args.concurrency,
                "num_prompts": args.num_prompts,
                "input_tokens": args.input_len,
                "ironserve_input_words": words,
                "output_len": args.output_len,
                "rounds": args.rounds,
                "metrics": summary,
                "worst_ratio_deviation": round(worst, 3),
                "client_over_engine": agreement,
            }
        )
    )


if __name__ == "__main__":
    main()
