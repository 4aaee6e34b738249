"""The lab's ``python3 -m sglang.launch_server``: SGLang's multi-node launch (``--nnodes N
--node-rank R --dist-init-addr HEAD:PORT``), with a real TCP rendezvous at the init address:
rank 0 listens and waits for every other rank; then each rank checks its weights and loads;
rank 0 serves the API, the others stay up until rank 0 goes away (as NCCL peers would)."""

from __future__ import annotations

import os
import socket
import sys
import time

from . import flags, loading, server, weights

USAGE = "[-h] --model-path MODEL_PATH [options]"
RENDEZVOUS_ENV = "IRONSERVE_LAB_RENDEZVOUS_SECONDS"


def log(message: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def rendezvous_head(address: tuple[str, int], nnodes: int, timeout: float) -> list[socket.socket]:
    """Rank 0: accept ``nnodes - 1`` ranks (each sends ``rank R\\n``); answer them ``go``."""
    listener = socket.create_server(("0.0.0.0", address[1]), reuse_port=False)
    listener.settimeout(1.0)
    peers: dict[int, socket.socket] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(peers) < nnodes - 1:
            if time.monotonic() > deadline:
                missing = sorted(set(range(1, nnodes)) - set(peers))
                raise RuntimeError(
                    f"rendezvous at {address[0]}:{address[1]} timed out after {timeout:g}s: "
                    f"rank(s) {missing} never joined"
                )
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            line = conn.makefile("r").readline().split()
            if len(line) == 2 and line[0] == "rank" and line[1].isdigit():
                peers[int(line[1])] = conn
                log(f"rendezvous: rank {line[1]} joined from {peer[0]} ({len(peers) + 1}/{nnodes})")
            else:
                conn.close()
        for conn in peers.values():
            conn.sendall(b"go\n")
            conn.settimeout(None)
    finally:
        listener.close()
    return list(peers.values())


def rendezvous_rank(address: tuple[str, int], rank: int, timeout: float) -> socket.socket:
    """Rank R > 0: connect (retrying while rank 0 is not up yet), announce, wait for ``go``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.create_connection(address, timeout=5)
            conn.sendall(f"rank {rank}\n".encode())
            conn.settimeout(max(1.0, deadline - time.monotonic()))
            if conn.makefile("r").readline().strip() == "go":
                conn.settimeout(None)
                return conn
            conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"rank {rank}: no rendezvous at {address[0]}:{address[1]} within {timeout:g}s"
            )
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags.log_to_container()
    _engine, version = flags.declared("sglang")
    prog = "launch_server.py"
    table = flags.load_table("sglang", version)
    parsed = flags.parse(table, argv)
    if parsed.unknown or parsed.positionals:
        flags.fail(
            prog, USAGE, "unrecognized arguments: " + " ".join(parsed.unknown + parsed.positionals)
        )
    model = parsed.get("--model-path")
    if model is None:
        flags.fail(prog, USAGE, "the following arguments are required: --model-path")
    assert model is not None
    tp = parsed.int("--tp-size", default=1)
    pp = parsed.int("--pp-size", default=1)
    nnodes = parsed.int("--nnodes", default=1)
    rank = parsed.int("--node-rank", default=0)
    host = parsed.get("--host") or "127.0.0.1"
    port = parsed.int("--port", default=30000)
    timeout = float(os.environ.get(RENDEZVOUS_ENV, "600"))
    if nnodes > 1 and parsed.get("--dist-init-addr") is None:
        flags.fail(prog, USAGE, "--dist-init-addr is required when --nnodes > 1")
    log(f"sglang {version} (ironserve lab engine) rank {rank}/{nnodes} tp {tp}")
    peers: list[socket.socket] = []
    try:
        checked = weights.check(model, tp, pp)
        if nnodes > 1:
            address = _address(parsed.get("--dist-init-addr") or "")
            if rank == 0:
                peers = rendezvous_head(address, nnodes, timeout)
            else:
                peers = [rendezvous_rank(address, rank, timeout)]
            log(f"rendezvous complete: {nnodes} node(s)")
        loading.load(checked)
    except (weights.WeightsError, RuntimeError, ValueError) as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    if rank != 0:
        # Stay up while rank 0 does; its going away ends this rank too (as a broken NCCL ring).
        peers[0].recv(1)
        log("rank 0 went away; exiting")
        return 1
    config = checked.config.get("text_config", checked.config)
    settings = server.Settings(
        served_names=[parsed.get("--served-model-name") or model],
        root=model,
        max_model_len=parsed.int(
            "--context-length", default=int(config.get("max_position_embeddings", 4096))
        ),
        api_key=parsed.get("--api-key"),
        engine="sglang",
        version=version,
    )
    log("The server is fired up and ready to roll!")
    server.serve(settings, host, port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
