"""libpier's cluster client (pier_cluster_*, client/cluster.c) against a real
3-node pier cluster, through the C program
tests/integration/libpier_cluster_e2e.c (built as
build/asan/test-libpier-cluster-e2e).

The client talks CURP itself (PIER.EXEC to the leader, PIER.RECORD to the
witnesses, PIER.SYNC when they do not all accept), so the nodes' own
cluster_fast_path counters do not see it: the fast path is checked with
the client's own stats."""
import os
import signal
import subprocess
import time

import pytest

from conftest import IS_REDIS, REPO, Server, free_port, wait_for

E2E = REPO / "build" / "asan" / "test-libpier-cluster-e2e"

pytestmark = pytest.mark.skipif(IS_REDIS, reason="pier cluster mode is pier's own")

ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:halt_on_error=1",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


def info_cluster(server, **kw):
    try:
        return server.client(socket_timeout=2, **kw).info("cluster")
    except Exception:
        return {}


def leader_of(nodes, **kw):
    """The node (index) that says leader and serving, or None."""
    for i, n in enumerate(nodes):
        if n.alive():
            info = info_cluster(n, **kw)
            if info.get("cluster_role") == "leader" and info.get("cluster_serving") == 1:
                return i
    return None


def start_cluster(tmp_path, *extra):
    """Three pier nodes on loopback (bus ports chosen free too), started
    once one leads. Returns (nodes, "host:port,...")."""
    ports = [free_port() for _ in range(3)]
    bus = [free_port() for _ in range(3)]
    members = ",".join(f"{i + 1}@127.0.0.1:{ports[i]}@{bus[i]}" for i in range(3))
    key = tmp_path / "cluster.key"  # the bus secret (docs/CONSISTENCY.md)
    key.write_text(os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    nodes = []
    for i in range(3):
        d = tmp_path / f"n{i + 1}"
        d.mkdir()
        nodes.append(Server("pier", d, ["--dir", str(d), "--cluster-node-id", str(i + 1),
                                        "--cluster-nodes", members,
                                        "--cluster-secret-file", str(key), *extra],
                            port=ports[i]))
    for s in nodes:
        s.start()
    return nodes, ",".join(f"127.0.0.1:{p}" for p in ports)


@pytest.fixture
def cluster_factory(tmp_path):
    """start(*extra) -> (nodes, addrs) once a leader serves. Nodes still
    running at the end must stop cleanly (exit 0, no sanitizer report)."""
    started = []

    def start(*extra, password=None):
        nodes, addrs = start_cluster(tmp_path, *extra)
        started.extend(nodes)
        kw = {"password": password} if password else {}
        wait_for(lambda: leader_of(nodes, **kw) is not None, timeout=15,
                 msg="a serving leader")
        return nodes, addrs

    yield start
    for s in started:
        s.stop(check=s.alive())


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory()


def e2e(*args, timeout=120):
    if not E2E.exists():
        pytest.fail(f"{E2E} missing: build it with `make build/asan/test-libpier-cluster-e2e`",
                    pytrace=False)
    return [str(E2E), *map(str, args)]


def logs(nodes):
    return "\n".join(n.logs(4000) for n in nodes)


@pytest.mark.parametrize("home", ["leader", "follower"])
def test_strong_and_weak_ops(cluster, home):
    """SET/GET/INCR/DEL through CURP, writes on the fast path, weak
    read-your-writes on the home node, whichever node is home."""
    nodes, addrs = cluster
    lead = leader_of(nodes)
    idx = lead if home == "leader" else (lead + 1) % 3
    p = subprocess.run(e2e("basic", addrs, idx), capture_output=True, timeout=120, env=ENV)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, out + logs(nodes)
    assert p.stdout.startswith(b"ok fast="), out
    fast = int(p.stdout.split()[1].split(b"=")[1])
    # 205 writes on distinct keys or after a commit: most go in one round trip
    assert fast >= 100, out
    r = nodes[lead].client()
    assert r.get("ce:n") == b"100"
    assert r.get("ce:many:7") == b"value-7"


def test_exactly_once_across_leader_kill(cluster):
    """INCR in a loop while the leader is killed (-9): the client follows the
    new leader and retries with the same (cid, seq), so the counter equals
    the successful calls (a failed call may or may not have applied), and
    the calls resume within a few seconds."""
    nodes, addrs = cluster
    lead = leader_of(nodes)
    home = (lead + 1) % 3
    proc = subprocess.Popen(e2e("incr", addrs, home, "ce:ctr", 6), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    try:
        # let it run, then kill the leader mid-stream
        for line in proc.stdout:
            if line.startswith(b"progress") and int(line.split()[1]) >= 200:
                break
        nodes[lead].proc.send_signal(signal.SIGKILL)
        nodes[lead].proc.wait()
        killed_at = time.monotonic()
        wait_for(lambda: leader_of(nodes) not in (None, lead), timeout=10,
                 msg="a new leader")
        elected_s = time.monotonic() - killed_at
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (out + err).decode(errors="replace")
    assert proc.returncode == 0, text + logs(nodes)
    done = [ln for ln in out.decode().splitlines() if ln.startswith("done ")]
    assert done, text
    f = dict(kv.split("=") for kv in done[0].split()[1:])
    ok, errs, final = int(f["ok"]), int(f["err"]), int(f["final"])
    assert ok <= final <= ok + errs, text
    assert int(f["failovers"]) >= 1, text
    # the call that spanned the failover: election (target 2 s) + discovery
    assert elected_s < 5, f"new leader after {elected_s:.1f} s"
    assert int(f["maxms"]) < 5000, text
    assert errs == 0, text
    # the survivors agree on the counter
    for n in nodes:
        if n.alive():
            r = n.client()
            r.execute_command("PIER.CONSISTENCY", "STRONG")
            assert int(r.get("ce:ctr")) == final


def test_no_node_answering_is_a_connect_error():
    port = free_port()
    p = subprocess.run(e2e("basic", f"127.0.0.1:{port}", 0), capture_output=True, timeout=60,
                       env=ENV)
    assert p.returncode == 1
    assert b"cannot connect" in p.stderr, p.stderr


def test_password(cluster_factory):
    """requirepass on every node: AUTH on each connection; a wrong or
    missing password is an authentication error at connect."""
    nodes, addrs = cluster_factory("--requirepass", "s3cret", password="s3cret")
    p = subprocess.run(e2e("basic", addrs, 1, "s3cret"), capture_output=True, timeout=120,
                       env=ENV)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace") + logs(nodes)
    for bad in (["wrong"], []):
        p = subprocess.run(e2e("basic", addrs, 1, *bad), capture_output=True, timeout=60,
                           env=ENV)
        assert p.returncode == 1
        assert b"authentication failed" in p.stderr, p.stderr
