"""Weights end to end on a 3-node gpu2 lab of its own (full nodes, provisioned first with
deploys/provision.py): `ironserve weights pull` downloads once from the lab hub (HF API and
ModelScope API) with the real clients on the seed, streams each verified file through the group
over the lab network with rsync over SSH, and every node verifies; the hub counts exactly one
copy; a second run changes nothing; a node that stopped mid-stream completes from a peer; a drop
mid-shard and a corrupted byte are survived without re-downloading finished files or accepting
bad bytes; a full disk and a gated model without a token are refused before any byte; no case
leaves a half-written file at the final path."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironserve.lab import cluster
from ironserve.lab import state as st
from ironserve.lab.hub.control import HubControl
from tests.lab.conftest import BIN, ROOT, Node, lab_in, nodes_of

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab.py"
REPO = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
DEST = f"/data/models/{REPO}"
SHARDS = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
CFG = "/etc/ironserve/weights/default"


@pytest.fixture(scope="module")
def lab(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("weights-lab")
    with lab_in(directory, 3, "gpu2", real_vllm=False):
        result = run(directory, "pyinfra", "-y", INVENTORY, "deploys/provision.py")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield directory


def run(lab_dir: Path, tool: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The synthetic sharded repo (4 shards: resumes and re-fetches per file), not the real model.
    lab_env = {"IRONSERVE_LAB_DIR": str(lab_dir), "IRONSERVE_LAB_MODEL": REPO}
    return subprocess.run(
        [str(BIN / tool), *args],
        cwd=ROOT,
        env={**os.environ, **lab_env, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def hub(lab_dir: Path) -> HubControl:
    state = st.load(lab_dir)
    assert state is not None
    service = state.services["hub"]
    return HubControl(service.host_url or service.url)


@pytest.fixture
def fresh(lab: Path) -> Iterator[tuple[Path, HubControl]]:
    """No weights on any node, hub counters at zero, no faults."""
    for node in nodes_of(lab):
        node.run(f"rm -rf /data/models {DEST}.incoming")
    control = hub(lab)
    control.clear_faults()
    control.reset()
    yield lab, control
    control.clear_faults()


def pull(lab_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run(lab_dir, "ironserve", "weights", "pull", "-i", INVENTORY, **env)


def verify(lab_dir: Path, **env: str) -> tuple[int, dict[str, Any]]:
    result = run(lab_dir, "ironserve", "weights", "verify", "-i", INVENTORY, "--json", **env)
    return result.returncode, json.loads(result.stdout)


def changed(output: str) -> str:
    """How many operation x host pairs changed something, from the summary `weights pull`
    prints out of pyinfra's results ("weights: N changed, M unchanged, F failed ...")."""
    line = [line for line in output.splitlines() if line.startswith("weights: ")][-1]
    return line.split()[1]


def no_bad_file_at_final_path(lab_dir: Path, control: HubControl) -> None:
    """Whatever sits at the final path is a complete, verified file."""
    expected = {p: f["sha256"] for p, f in control.repos()[REPO]["files"].items()}
    for node in nodes_of(lab_dir):
        _, out = node.run(f"cd {DEST} 2>/dev/null && sha256sum * || true")
        for line in out.splitlines():
            digest, _, name = line.partition("  ")
            if name in expected:
                assert digest == expected[name], f"{node.name}: {name} at the final path is bad"


def assert_no_fanout_secret(node: Node) -> None:
    """The fan-out key, its authorized_keys line and the hub token exist only for a transfer."""
    code, out = node.run(
        f"ls {CFG}/fanout_key {CFG}/hub-token 2>&1; grep -c ironserve-weights "
        "/root/.ssh/authorized_keys",
        check=False,
    )
    assert code != 0 and out.count("No such file") == 2 and out.split()[-1] == "0", out


def assert_all_complete(lab_dir: Path, **env: str) -> None:
    code, report = verify(lab_dir, **env)
    assert code == 0, report
    assert [n["status"] for n in report["nodes"]] == ["complete"] * 3


def test_pull_from_the_hf_api_once_then_nothing(fresh: tuple[Path, HubControl]) -> None:
    lab_dir, control = fresh
    total = control.repos()[REPO]["total_bytes"]
    first = pull(lab_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert_all_complete(lab_dir)
    stats = control.stats()
    assert stats["total_bytes"] == total  # one copy for the whole cluster
    seed = st.load(lab_dir).nodes[0].address  # type: ignore[union-attr]
    assert stats["clients"] == {seed: total}
    for node in nodes_of(lab_dir):  # the manifest, usable by sha256sum -c
        node.run(f"cd {DEST} && sha256sum -c --quiet SHA256SUMS")
        node.run(f"test ! -e {DEST}.incoming")
        assert_no_fanout_secret(node)

    control.reset()
    second = pull(lab_dir)
    assert second.returncode == 0
    assert changed(second.stdout) in ("-", "0")
    assert second.stdout.count("verified") == 3
    assert control.stats()["total_bytes"] == 0
    dry = run(lab_dir, "pyinfra", "-y", "--dry", INVENTORY, "deploys/weights.py")
    assert dry.returncode == 0 and "Starting operation" not in dry.stdout

    # A shard changed on the last node (a repair): it pulls from a holder that pulls nothing
    # itself; the holder's authorized_keys line stays until the stream is over, then goes.
    nodes = nodes_of(lab_dir)
    nodes[-1].run(f"printf X | dd of={DEST}/{SHARDS[0]} bs=1 seek=64 conv=notrunc status=none")
    control.reset()
    repair = pull(lab_dir)
    assert repair.returncode == 0, repair.stdout[-4000:] + repair.stderr[-2000:]
    assert control.stats()["total_bytes"] == 0  # from a peer, not the hub
    assert_all_complete(lab_dir)
    for node in nodes:
        assert_no_fanout_secret(node)


def test_a_node_stopped_mid_stream_completes_from_a_peer(fresh: tuple[Path, HubControl]) -> None:
    """The last node as a stream killed after its first shard leaves it: two shards verified at
    the final path, a half-pulled shard in staging, its progress file of that run, no manifest.
    The next pull completes it from a peer that holds the weights: the hub sends nothing."""
    lab_dir, control = fresh
    first = pull(lab_dir)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    victim = nodes_of(lab_dir)[-1]
    victim.run(
        f"cd {DEST} && rm -f ironserve-manifest.json SHA256SUMS {SHARDS[2]} {SHARDS[3]} && "
        f"mkdir -p {DEST}.incoming && head -c 1000000 {SHARDS[1]} > {DEST}.incoming/{SHARDS[2]} && "
        f"printf 'run killed\\n{SHARDS[0]}\\n{SHARDS[1]}\\n' > .ironserve-ready"
    )
    control.reset()
    again = pull(lab_dir)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    assert control.stats()["total_bytes"] == 0  # from a peer, not the hub
    assert_all_complete(lab_dir)
    victim.run(f"cd {DEST} && sha256sum -c --quiet SHA256SUMS && test ! -e {DEST}.incoming")
    for node in nodes_of(lab_dir):
        assert_no_fanout_secret(node)


def test_pull_from_the_modelscope_api(fresh: tuple[Path, HubControl]) -> None:
    lab_dir, control = fresh
    result = pull(lab_dir, IRONSERVE_LAB_HUB="modelscope")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_all_complete(lab_dir, IRONSERVE_LAB_HUB="modelscope")
    assert control.stats()["total_bytes"] == control.repos()[REPO]["total_bytes"]


def test_drop_resumes_and_a_corrupt_byte_is_refetched(fresh: tuple[Path, HubControl]) -> None:
    lab_dir, control = fresh
    size = control.repos()[REPO]["files"][SHARDS[1]]["size"]
    control.fault("drop", SHARDS[1], after_bytes=size // 3)
    control.fault("corrupt", SHARDS[2], after_bytes=size // 2)
    result = pull(lab_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = control.stats()
    assert stats["faults_fired"]["drop"] == 1 and stats["faults_fired"]["corrupt"] == 1
    served = {path.rsplit("/", 1)[1]: n for path, n in stats["files"].items()}
    # finished files are never fetched again; the corrupt one twice, the dropped one < twice
    assert served[SHARDS[0]] == served[SHARDS[3]] == size
    assert served[SHARDS[2]] == 2 * size
    assert size < served[SHARDS[1]] < 2 * size
    assert_all_complete(lab_dir)
    no_bad_file_at_final_path(lab_dir, control)


def test_a_corrupt_file_is_never_accepted(fresh: tuple[Path, HubControl]) -> None:
    lab_dir, control = fresh
    control.fault("corrupt", SHARDS[0], count=10)  # more than the seed's attempts
    result = pull(lab_dir)
    assert result.returncode != 0
    for node in nodes_of(lab_dir):
        assert node.run(f"test -e {DEST}/{SHARDS[0]}", check=False)[0] != 0
        assert node.run(f"test -e {DEST}/ironserve-manifest.json", check=False)[0] != 0
    no_bad_file_at_final_path(lab_dir, control)
    code, report = verify(lab_dir)
    assert code == 1 and SHARDS[0] in report["nodes"][0]["missing"]


def test_full_disk_is_refused_before_the_download(fresh: tuple[Path, HubControl]) -> None:
    lab_dir, control = fresh
    victim = nodes_of(lab_dir)[2]
    cluster.fault(victim.name, "disk-full", directory=lab_dir)
    try:
        result = pull(lab_dir)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert f"{victim.name}: disk: /data" in output and "bytes free" in output
        assert control.stats()["total_bytes"] == 0
        for node in nodes_of(lab_dir):
            assert node.run(f"test -e {DEST}", check=False)[0] != 0
    finally:
        cluster.heal(victim.name, directory=lab_dir)


def test_gated_model_needs_the_token(fresh: tuple[Path, HubControl]) -> None:
    lab_dir, control = fresh
    spec = control.repos()[REPO]
    token = (lab_dir / "hub-token").read_text().strip()
    control.add_repo(REPO, total_bytes=spec["total_bytes"], shards=4, gated=True, token=token)
    try:
        result = pull(lab_dir)
        output = result.stdout + result.stderr
        assert result.returncode == 1
        assert "is gated: set hub_token_file" in output and "HF_TOKEN" in output
        assert control.stats()["total_bytes"] == 0
        for node in nodes_of(lab_dir):
            assert node.run(f"test -e {DEST}", check=False)[0] != 0

        # with the lab's token file (0600): pulled, the token only in a 0600 file on the seed
        result = pull(lab_dir, IRONSERVE_LAB_HUB_TOKEN="1")
        assert result.returncode == 0, result.stdout + result.stderr
        assert token not in result.stdout + result.stderr
        assert_all_complete(lab_dir, IRONSERVE_LAB_HUB_TOKEN="1")
        seed = nodes_of(lab_dir)[0]
        assert token not in seed.run(f"cat {CFG}/weights.json")[1]
        assert_no_fanout_secret(seed)  # the token was removed after the download
    finally:
        control.add_repo(REPO, total_bytes=spec["total_bytes"], shards=4, gated=False)


def test_fanout_key_reads_only_the_weights_and_diff_shows_no_secret(
    fresh: tuple[Path, HubControl],
) -> None:
    """Kept on purpose (weights_keep_fanout_key): the private key only on the nodes that pull,
    the authorized_keys line only on the node that serves (the seed: n1 and n2 both stream from
    n0, a tree of fan-out 2), and that key runs nothing but a read-only rsync of the weights
    folder. The run's
    `pyinfra --diff` output holds neither the key nor the hub token."""
    lab_dir, _ = fresh
    keys = lab_dir / "fanout-keys"
    token = (lab_dir / "hub-token").read_text().strip()
    result = run(
        lab_dir,
        "pyinfra",
        "-y",
        "--diff",
        "--data",
        "weights_keep_fanout_key=true",
        "--data",
        f"weights_fanout_key_dir={keys}",
        INVENTORY,
        "deploys/weights.py",
        IRONSERVE_LAB_HUB_TOKEN="1",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    private = next(keys.rglob("id_ed25519")).read_text().strip()
    assert "Will create" in output  # --diff printed the files it wrote (the pull config)
    for secret in (token, *private.splitlines()[1:-1]):
        assert secret not in output
    nodes = nodes_of(lab_dir)
    seed, pullers = nodes[0], nodes[1:]
    seed_ip = st.load(lab_dir).nodes[0].address  # type: ignore[union-attr]
    try:
        assert seed.run(f"stat -c %a {CFG} {CFG}/hub-token")[1].split() == ["700", "600"]
        assert seed.run(f"test -e {CFG}/fanout_key", check=False)[0] != 0
        (line,) = seed.run("grep ironserve-weights /root/.ssh/authorized_keys")[1].splitlines()
        assert line.startswith(f'command="/usr/bin/rrsync -ro {DEST}",from="')
        for node in pullers:
            assert node.run(f"stat -c %a {CFG}/fanout_key")[1].strip() == "600"
            assert node.run("grep -c ironserve-weights /root/.ssh/authorized_keys", check=False)[
                1
            ].strip() in ("0", "")
        puller = pullers[0]
        ssh = (
            f"ssh -i {CFG}/fanout_key -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={CFG}/known_hosts root@{seed_ip}"
        )
        code, out = puller.run(f"{ssh} id", check=False)  # no shell: rrsync refuses
        assert code != 0 and "uid=" not in out, out
        rsync = f"rsync -e {shlex.quote(ssh.rsplit(' ', 1)[0])}"
        code, out = puller.run(f"{rsync} root@{seed_ip}:/etc/shadow /tmp/ironserve-x", check=False)
        assert code != 0 and puller.run("test -e /tmp/ironserve-x", check=False)[0] != 0, out
        code, out = puller.run(
            f"{rsync} /etc/hostname root@{seed_ip}:/ironserve-push-test", check=False
        )
        assert code != 0 and "read-only" in out, out  # nothing can be written to the seed
        puller.run(f"{rsync} root@{seed_ip}:/SHA256SUMS /tmp/ironserve-sums")  # the weights: yes
    finally:
        for node in nodes:
            node.run(
                f"rm -f {CFG}/fanout_key {CFG}/known_hosts {CFG}/hub-token /tmp/ironserve-sums; "
                "sed -i '/ironserve-weights-/d' /root/.ssh/authorized_keys"
            )
