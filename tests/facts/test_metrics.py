"""facts/metrics.py on captured vLLM `/metrics` (vllm.md 1a-1e: the deprecated
`vllm:gpu_cache_usage_perc`, the current `vllm:kv_cache_usage_perc` with its `engine` label,
HELP-only families, histograms) and facts/npu_ping.py's parallel `hccn_tool -ping` script, run
by bash against a stand-in `hccn_tool` that prints the captured output (ascend.md 4e)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ironserve.facts.metrics import engine_metrics, histogram_totals, parse_prometheus
from ironserve.facts.npu_ping import NpuPeerPings, parse_pings, ping_command
from tests.facts.conftest import LOCAL, SHARED


def _text(name: str) -> str:
    return (LOCAL / name).read_text()


@pytest.mark.parametrize(
    ("fixture", "running", "waiting", "kv", "metric", "models"),
    [
        (  # aioprometheus-era vLLM: the paste stops at num_requests_running's HELP line
            "vllm-metrics.1a-gpu-cache-old.aioprometheus.txt",
            None,
            None,
            0.38849487785658,
            "vllm:gpu_cache_usage_perc",
            ("/models/mistral-7b",),
        ),
        (
            "vllm-metrics.1b-gpu-cache-old.v1.txt",
            0.0,
            0.0,
            0.0,
            "vllm:gpu_cache_usage_perc",
            ("Qwen/Qwen2.5-Coder-32B-Instruct",),
        ),
        (
            "vllm-metrics.1c-kv-cache-new.0.10.0.txt",
            None,
            None,
            9.75010481363281e-06,
            "vllm:kv_cache_usage_perc",
            ("zai-org/GLM-4.5",),
        ),
        ("vllm-metrics.1d-help-only.txt", None, None, None, None, ()),
        (
            "vllm-metrics.1e-doc-histogram.txt",
            None,
            None,
            None,
            None,
            ("unsloth/Llama-3.2-1B-Instruct",),
        ),
    ],
)
def test_engine_metrics_on_captured_vllm_outputs(
    fixture: str,
    running: float | None,
    waiting: float | None,
    kv: float | None,
    metric: str | None,
    models: tuple[str, ...],
) -> None:
    m = engine_metrics(_text(fixture))
    assert (m.running, m.waiting, m.kv_usage, m.kv_metric, m.models) == (
        running,
        waiting,
        kv,
        metric,
        models,
    )
    assert m.complete == (fixture == "vllm-metrics.1b-gpu-cache-old.v1.txt")


def test_prometheus_samples_labels_and_junk_lines() -> None:
    samples = parse_prometheus(_text("vllm-metrics.1e-doc-histogram.txt"))
    assert len(samples) == 9  # `$ curl ...` and `...` lines are skipped
    assert samples[1].labels == {"le": "1.0", "model_name": "unsloth/Llama-3.2-1B-Instruct"}
    assert samples[1].value == 3.0
    counters = parse_prometheus(_text("vllm-metrics.1a-gpu-cache-old.aioprometheus.txt"))
    assert counters[0].name == "requests_total_counter" and counters[0].value == 24
    assert parse_prometheus("x 1.5e+09 1700000000000\nbad line\n")[0].value == 1.5e9


def test_histogram_totals_add_label_sets_and_an_absent_family_is_zero() -> None:
    text = (
        'vllm:inter_token_latency_seconds_bucket{engine="0",le="0.1",model_name="m"} 7.0\n'
        'vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 10.0\n'
        'vllm:inter_token_latency_seconds_sum{engine="0",model_name="m"} 0.75\n'
        'vllm:inter_token_latency_seconds_count{engine="1",model_name="m"} 30.0\n'
        'vllm:inter_token_latency_seconds_sum{engine="1",model_name="m"} 2.25\n'
    )
    samples = parse_prometheus(text)
    assert histogram_totals(samples, "vllm:inter_token_latency_seconds") == (40.0, 3.0)
    assert histogram_totals(samples, "vllm:time_to_first_token_seconds") == (0.0, 0.0)


def test_both_kv_names_the_current_one_wins_and_data_parallel_engines_add_up() -> None:
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 3.0\n'
        'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5\n'
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75\n'
    )
    m = engine_metrics(text)
    assert (m.running, m.kv_usage, m.kv_metric) == (5.0, 0.75, "vllm:kv_cache_usage_perc")


def test_sglang_names() -> None:
    # Not a capture (none was found): SGLang's gauge names as its docs list them.
    text = (
        'sglang:num_running_reqs{model_name="m"} 1.0\n'
        'sglang:num_queue_reqs{model_name="m"} 4.0\n'
        'sglang:token_usage{model_name="m"} 0.9\n'
    )
    m = engine_metrics(text)
    assert (m.running, m.waiting, m.kv_usage, m.kv_metric) == (1.0, 4.0, 0.9, "sglang:token_usage")


def test_hccn_ping_script_runs_every_target_in_parallel_and_parses(tmp_path: Path) -> None:
    capture = (SHARED / "hccn-ping.txt").read_text().split("\n", 1)[1]  # drop the `$ ` line
    tool = tmp_path / "hccn_tool"
    tool.write_text(
        "#!/bin/sh\n"
        '[ "$2" = 1 ] && { echo "device 1 PING $6"; '
        'echo "3 packets transmitted, 0 received, 100.00% packet loss"; exit 1; }\n'
        f"cat <<'EOF'\n{capture}EOF\n"
    )
    tool.chmod(0o755)
    targets = ((0, "10.0.0.2"), (1, "10.0.1.2"), (0, "10.0.0.3"))
    done = subprocess.run(
        ["bash", "-c", ping_command(targets)],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    found = parse_pings(done.stdout.splitlines())
    assert set(found) == set(targets)
    assert found[(0, "10.0.0.2")] == {"sent": 3, "received": 3, "loss": 0.0, "rc": 0}
    assert found[(1, "10.0.1.2")] == {"sent": 3, "received": 0, "loss": 100.0, "rc": 1}
    absent = subprocess.run(
        ["bash", "-c", ping_command(targets)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert NpuPeerPings().process(absent.stdout.splitlines()) == {}
