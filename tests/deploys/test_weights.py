"""roles/weights on @fake hosts (pyinfra API mode), with the hub's metadata read by the real
client from the lab hub on loopback: fresh nodes get one operation on every node that streams the
weights (the seed's download, each other node's pull from its upstream in a tree of fan-out 2);
complete nodes get no operation at all; a short disk anywhere stops the run
before any operation; a partly complete group only fills its gaps."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pyinfra
import pytest
from pyinfra.api.exceptions import DeployError
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_state
from pyinfra_cli.util import load_deploy_file

from ironserve.lab.hub import repos as hub_repos
from ironserve.lab.hub.server import Hub, serve_in_thread
from ironserve.roles.weights import deploy_weights
from ironserve.weights import client_lock
from ironserve.weights.client_lock import LAB_NODE_ENV
from ironserve.weights.metadata import hub_metadata
from tests.deploys.conftest import FakeRun

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "src" / "ironserve" / "catalog" / "data" / "models"
REPO = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
DEST = f"/weights/{REPO}"
PROBE = re.compile(r"statvfs")  # the WeightsState fact's command
NAMES = ["@fake/n1", "@fake/n2", "@fake/n3", "@fake/n4"]
INSTALL, LOCK = "Weights | Install the hub client", "Weights | Hub client lock"


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = Hub(tmp_path_factory.mktemp("hub"), CATALOG)
    for spec in hub_repos.default_specs("hf_token"):
        state.add_repo(spec)
    server = serve_in_thread(state)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def installed_client(env: dict[str, str] = LAB_NODE_ENV) -> dict[str, Any]:
    """The probe's answer for a hub-client venv installed from the packaged lock, on a node
    whose Python has marker environment ``env``."""
    _, pins = client_lock.read()
    versions = client_lock.pins_for(pins, env)
    return {"client": True, "client_env": env, "client_versions": versions}


def node_state(hub_url: str, complete: bool, free: int = 20 << 30) -> dict[str, Any]:
    state: dict[str, Any] = {
        "manifest": None,
        "stat": {},
        "staging_bytes": 0,
        **installed_client(),
        "free_path": "/weights",
        "free_bytes": free,
        "host_key": "ssh-ed25519 AAAAhostkey",
    }
    if complete:
        meta = hub_metadata("huggingface", hub_url, REPO, "main", None)
        files = {
            f.path: {"size": f.size, "sha256": f.sha256 or "0" * 64, "mtime_ns": 5}
            for f in meta.files
        }
        state["manifest"] = {"repo_id": REPO, "files": files}
        state["stat"] = {p: [e["size"], 5] for p, e in files.items()}
    return state


def unprepared(
    hub_url: str,
    tmp_path: Path,
    states: list[dict[str, Any]] | None = None,
    keep: bool = False,
    data: dict[str, Any] | None = None,
) -> FakeRun:
    """Fake nodes of one group pulling ``REPO`` from ``hub_url``; ``states``: each node's
    weights probe answer (none: no fact answered); ``data``: more group data."""
    hosts = [
        (
            name,
            {
                "node_role": "head" if i == 0 else "worker",
                "node_ip": f"10.9.0.{i + 1}",
                "network_socket_ifname": "eth0",
                **({"fake_responses": {PROBE: json.dumps(states[i])}} if states else {}),
            },
        )
        for i, name in enumerate(NAMES)
    ]
    group_data = {
        "model_id": REPO,
        "model_weights_dir": "/weights",
        "engine_kind": "vllm",
        "accelerator_kind": "h100-80g",
        "accelerator_count": 8,
        "hub_endpoint": hub_url,
        "weights_fanout_key_dir": str(tmp_path / "keys"),
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "weights_keep_fanout_key": keep,
        **(data or {}),
    }
    return FakeRun(hosts, group_data)


def fake(
    hub_url: str,
    tmp_path: Path,
    states: list[dict[str, Any]],
    deploy_file: Path | None = None,
    keep: bool = False,
    data: dict[str, Any] | None = None,
) -> FakeRun:
    """The weights role on fake nodes; ``deploy_file``: loaded as `pyinfra INVENTORY FILE`
    loads it, instead of calling the role; ``keep``: weights_keep_fanout_key."""
    run = unprepared(hub_url, tmp_path, states, keep, data)
    if deploy_file is None:
        run.prepare_as_cli(deploy_weights)
        return run
    saved, pyinfra.is_cli = pyinfra.is_cli, True
    run.state.set_stage(StateStage.Prepare)
    try:
        with ctx_state.use(run.state):
            load_deploy_file(run.state, str(deploy_file))
    finally:
        pyinfra.is_cli = saved
    return run


STREAM = "Weights: stream through the group"


def stream_op(ops: list[str]) -> list[str]:
    return [op for op in ops if STREAM in op]


def test_fresh_group_streams_through_one_operation_on_every_node(
    hub_url: str, tmp_path: Path
) -> None:
    """One stream operation on every node, at one call site (so pyinfra runs it on all of them
    at once): the seed downloads in it, n2 and n3 pull from the seed, n4 from n2."""
    run = fake(hub_url, tmp_path, [node_state(hub_url, False) for _ in NAMES])
    order = [", ".join(sorted(run.state.get_op_meta(h).names)) for h in run.state.get_op_order()]
    assert len(stream_op(order)) == 1  # one operation, shared by every host
    for name in NAMES:
        assert len(stream_op(run.changed_ops(name))) == 1
        assert not any("download" in op or "round" in op for op in all_ops(run, name))
    run.execute()
    assert run.failed() == []
    commands = {n: " ".join(run.commands(n)) for n in NAMES}
    assert (
        "weights-pull.py seed /etc/ironserve/weights/default/weights.json --run "
        in (commands[NAMES[0]])
    )
    assert "hf_token" not in commands[NAMES[0]]
    sources = {n: commands[n].split("--from ")[1].split()[0] for n in NAMES[1:]}
    assert sources == {
        NAMES[1]: "root@10.9.0.1",
        NAMES[2]: "root@10.9.0.1",
        NAMES[3]: "root@10.9.0.2",
    }
    runs = {commands[n].split("--run ")[1].split()[0] for n in NAMES}
    assert len(runs) == 1  # the same run id everywhere: a stale progress file is ignored
    assert not any("--from-complete" in commands[n] for n in NAMES)
    key = next(tmp_path.joinpath("keys").rglob("id_ed25519"))
    assert key.stat().st_mode & 0o077 == 0


def test_fanout_key_only_where_used_and_only_for_the_transfer(hub_url: str, tmp_path: Path) -> None:
    """n2 and n3 pull from n1, n4 from n2. The private key goes only to the nodes that pull, the
    (forced-command) authorized_keys line only to the ones that serve, both before the stream
    and removed after it."""
    run = fake(hub_url, tmp_path, [node_state(hub_url, False) for _ in NAMES])
    order = {n: all_ops(run, n) for n in NAMES}
    has = {n: set(ops) for n, ops in order.items()}
    key = "Fan-out key (0600)"
    line = next(op for op in has[NAMES[0]] if op.startswith("Fan-out key authorized"))
    drop_key = "Remove the fan-out key after the pulls"
    drop_line = "Remove the fan-out key's authorized_keys line after the pulls"
    assert [n for n in NAMES if key in has[n]] == NAMES[1:]
    assert [n for n in NAMES if drop_key in has[n]] == NAMES[1:]
    assert [n for n in NAMES if line in has[n]] == NAMES[:2]
    assert [n for n in NAMES if drop_line in has[n]] == NAMES[:2]
    for name in NAMES:  # set up before the stream, removed after it (pyinfra's order)
        ops = order[name]
        (stream,) = [i for i, op in enumerate(ops) if STREAM in op]
        setup = [i for i, op in enumerate(ops) if op in (key, line)]
        removals = [i for i, op in enumerate(ops) if op.startswith("Remove")]
        assert removals and all(i > stream for i in removals)
        assert all(i < stream for i in setup)
    run.execute()
    assert run.failed() == []
    private = next(tmp_path.joinpath("keys").rglob("id_ed25519")).read_text()
    for name in NAMES:  # the key travels on stdin: no command carries it
        assert not any(private.strip() in c for c in run.commands(name))
    authorized = [c for c in run.commands(NAMES[0]) if "authorized_keys" in c]
    assert any('command="/usr/bin/rrsync -ro /weights/' in c for c in authorized)

    assert "Remove the hub token after the download" not in has[NAMES[0]]  # no token: none
    kept = fake(hub_url, tmp_path, [node_state(hub_url, False) for _ in NAMES], keep=True)
    assert not any(op.startswith("Remove") for n in NAMES for op in all_ops(kept, n))


def all_ops(run: FakeRun, name: str) -> list[str]:
    """Every operation of ``name`` in pyinfra's order, changing or not (a removal finds its file
    only when it runs)."""
    host = run.state.inventory.get_host(name)
    return [
        ", ".join(sorted(run.state.get_op_meta(h).names)).removeprefix("Weights | ")
        for h in run.state.get_op_order()
        if h in run.state.ops.get(host, {})
    ]


def test_complete_group_has_no_operation(hub_url: str, tmp_path: Path) -> None:
    run = fake(hub_url, tmp_path, [node_state(hub_url, True) for _ in NAMES])
    assert all(run.changed_ops(n) == [] for n in NAMES)
    assert not (tmp_path / "keys").exists()  # no fan-out, no key made


def test_short_disk_anywhere_stops_before_any_operation(hub_url: str, tmp_path: Path) -> None:
    states = [node_state(hub_url, False) for _ in NAMES]
    states[2] = node_state(hub_url, False, free=1 << 20)
    with pytest.raises(DeployError) as error:
        fake(hub_url, tmp_path, states)
    message = str(error.value)
    assert "@fake/n3: disk: /weights has 1048576 bytes free" in message
    assert f"for {DEST}" in message and "@fake/n1" not in message


def test_partly_complete_group_only_fills_its_gaps(hub_url: str, tmp_path: Path) -> None:
    """n1-n3 complete, n4 not (a node that failed mid-stream, a repair): n4 pulls everything it
    lacks from a holder, nobody reads the hub."""
    states = [node_state(hub_url, i < 3) for i in range(len(NAMES))]
    run = fake(hub_url, tmp_path, states)
    assert not any("download" in op for n in NAMES for op in run.changed_ops(n))
    assert len(stream_op(run.changed_ops(NAMES[3]))) == 1
    for holder in NAMES[:3]:  # holders only get the fan-out key set up, to serve n4
        assert all("Fan-out" in op for op in run.changed_ops(holder))
    run.execute()
    (pull,) = [c for c in run.commands(NAMES[3]) if " stream " in c]
    assert "--from root@10.9.0.1" in pull and pull.endswith("--from-complete")
    assert not any(" seed " in c for n in NAMES for c in run.commands(n))
    # pyinfra runs the operations in one order for every host: a holder's authorized_keys line
    # goes only after the stream (a repair: the holder pulls nothing).
    names = [", ".join(sorted(run.state.get_op_meta(h).names)) for h in run.state.get_op_order()]
    stream = max(i for i, n in enumerate(names) if STREAM in n)
    drop_line = names.index(
        "Weights | Remove the fan-out key's authorized_keys line after the pulls"
    )
    assert stream < drop_line, names


def test_a_seed_that_lost_its_copy_pulls_from_a_peer_not_the_hub(
    hub_url: str, tmp_path: Path
) -> None:
    states = [node_state(hub_url, i > 0) for i in range(len(NAMES))]
    run = fake(hub_url, tmp_path, states)
    assert INSTALL not in run.changed_ops(NAMES[0]) and LOCK not in run.changed_ops(NAMES[0])
    run.execute()
    (pull,) = [c for c in run.commands(NAMES[0]) if " stream " in c]
    assert "--from root@10.9.0.2" in pull and pull.endswith("--from-complete")


def test_the_packaged_deploy_file_runs_what_the_checkouts_does(
    hub_url: str, tmp_path: Path
) -> None:
    """`ironserve weights pull` runs the package's deploy file (no checkout needed): on the
    same nodes it prepares the same operations as deploys/weights.py and the role itself."""
    states = [node_state(hub_url, i < 2) for i in range(len(NAMES))]
    with resources.as_file(resources.files("ironserve").joinpath("deploys/weights.py")) as path:
        packaged = fake(hub_url, tmp_path, states, deploy_file=path)
    checkout = fake(hub_url, tmp_path, states, deploy_file=ROOT / "deploys" / "weights.py")
    direct = fake(hub_url, tmp_path, states)
    for name in NAMES:
        ops = packaged.changed_ops(name)
        assert ops == checkout.changed_ops(name) == direct.changed_ops(name)
    assert stream_op(packaged.changed_ops(NAMES[3]))


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], str]:
    """(host, remote path) -> content of every file the fake connector is given by files.put."""
    from pyinfra.connectors.fake import FakeConnector

    seen: dict[tuple[str, str], str] = {}

    def put_file(self: Any, filename_or_io: Any, remote_filename: str, *_: Any, **__: Any) -> bool:
        data = filename_or_io.read() if hasattr(filename_or_io, "read") else None
        data = data if data is not None else Path(filename_or_io).read_bytes()
        seen[(self.host.name, remote_filename)] = data.decode() if isinstance(data, bytes) else data
        return True

    monkeypatch.setattr(FakeConnector, "put_file", put_file)
    return seen


def test_a_seed_without_the_hub_client_installs_the_lock_by_hash(
    hub_url: str, tmp_path: Path, uploads: dict[tuple[str, str], str]
) -> None:
    """The lock goes to the node beside the venv; pip installs exactly it, every file checked
    against its sha256 (--require-hashes), nothing else pulled in (--no-deps), from the mirror."""
    states = [node_state(hub_url, False) for _ in NAMES]
    states[0]["client"] = False
    mirror = {"weights_pip_index_url": "https://pypi.mirror.local/simple"}
    run = fake(hub_url, tmp_path, states, data=mirror)
    seed_ops = run.changed_ops(NAMES[0])
    assert seed_ops.index(LOCK) < seed_ops.index(INSTALL)
    assert all(INSTALL not in run.changed_ops(n) for n in NAMES[1:])  # the seed alone downloads
    run.execute()
    assert run.failed() == []
    lock = "/opt/ironserve/hub-client.lock.txt"
    assert uploads[(NAMES[0], lock)] == client_lock.packaged()
    (install,) = [c for c in run.commands(NAMES[0]) if "pip" in c]
    assert "python3 -m venv --clear /opt/ironserve/hub-client &&" in install
    assert "--require-hashes --no-deps" in install and install.endswith(f" -r {lock}")
    assert "--index-url https://pypi.mirror.local/simple" in install
    assert "huggingface_hub==" not in install  # no requirement but the lock's


def test_a_hub_client_not_as_locked_is_installed_again(hub_url: str, tmp_path: Path) -> None:
    """Another version of one package, or a venv made for 3.11 on a node whose Python is now
    3.10 (the lock pins other versions there): reinstalled; as locked: left alone."""
    older = node_state(hub_url, False)
    older["client_versions"] = {**older["client_versions"], "huggingface_hub": "2.3.0"}
    moved = node_state(hub_url, False)
    moved["client_env"] = {
        **LAB_NODE_ENV,
        "python_version": "3.10",
        "python_full_version": "3.10.12",
    }
    on_310 = node_state(hub_url, False)
    on_310.update(installed_client(moved["client_env"]))
    for state, reinstall in ((older, True), (moved, True), (on_310, False)):
        states = [state] + [node_state(hub_url, False) for _ in NAMES[1:]]
        assert (INSTALL in fake(hub_url, tmp_path, states).changed_ops(NAMES[0])) is reinstall


def test_an_operators_own_lock_is_the_one_installed(
    hub_url: str, tmp_path: Path, uploads: dict[tuple[str, str], str]
) -> None:
    own = tmp_path / "site-hub-client.txt"
    own.write_text(
        "huggingface-hub==2.4.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
    )  # a node that holds 2.4.0 already needs nothing more
    states = [node_state(hub_url, False) for _ in NAMES]
    run = fake(hub_url, tmp_path, states, data={"weights_client_lock": str(own)})
    assert INSTALL not in run.changed_ops(NAMES[0])
    states[0]["client_versions"] = {"huggingface_hub": "2.3.0"}
    run = fake(hub_url, tmp_path, states, data={"weights_client_lock": str(own)})
    run.execute()
    assert uploads[(NAMES[0], "/opt/ironserve/hub-client.lock.txt")] == own.read_text()


def test_a_stream_wider_than_pyinfras_parallel_hosts_is_refused(
    hub_url: str, tmp_path: Path
) -> None:
    """Receivers wait for their upstream inside the one operation: a run that would start only
    some of the group's nodes at once could wait forever, so it stops before any operation."""
    run = unprepared(hub_url, tmp_path, [node_state(hub_url, False) for _ in NAMES])
    run.state.config.PARALLEL = 3
    with pytest.raises(DeployError, match=r"4 nodes stream the weights at once.*--parallel 4"):
        run.prepare_as_cli(deploy_weights)
