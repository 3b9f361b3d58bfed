"""Restarts of the whole cluster (spec: docs/CONSISTENCY.md, "Why no
acknowledged fast-path write is lost").

Every node is stopped (kill -9 or SIGTERM) and started again: all at once, one
by one in either order, without the old leader, or with a node killed again
while the new leader recovers. Each time a strong write and read must succeed
within RESTART_BOUND_S (the failure this catches is "never serves"), and
after the run:
  * the strong history (workload.py: SET/GET through every node, so writes
    take the CURP fast path through followers) with final strong reads of
    every key on every live node is linearizable;
  * every write of the ledger writers (unique keys, each written once, through
    every node) that was acknowledged reads back with its value.
Short runs are part of `make fault`; PIER_SOAK=1 (`make soak`) runs ten
restarts in a row on 3 and 5 nodes.
"""
import os
import random
import threading
import time

import pytest
import redis

from workload import Workload

RESTART_BOUND_S = float(os.environ.get("PIER_RESTART_BOUND", "20"))
SEED = int(os.environ.get("PIER_SOAK_SEED", str(random.randrange(1 << 30))))


def serve_probe(cluster, nodes=None, bound=RESTART_BOUND_S, tag="probe"):
    """Poll until a strong SET and GET both succeed through one of `nodes`
    (default: every live node, in turn); returns the seconds it took."""
    t0 = time.monotonic()
    nodes = nodes or [nd for nd in cluster.nodes.values() if nd.alive()]
    last = None
    n = 0
    while True:
        for nd in nodes:
            n += 1
            key, value = f"{tag}:{nd.id}", f"{tag}-{n}"
            c = nd.client(socket_timeout=6, socket_connect_timeout=2)
            try:
                if c.set(key, value) is True and c.get(key) == value.encode():
                    return time.monotonic() - t0
                last = "SET/GET answered but did not read back"
            except (redis.RedisError, OSError) as e:
                last = repr(e)
            finally:
                c.close()
            if time.monotonic() - t0 > bound:
                raise AssertionError(f"no strong SET+GET succeeded within {bound}s of the restart "
                                     f"(last: {last}); INFO: {cluster.infos()}\n"
                                     + cluster.all_logs(3000))
        time.sleep(0.05)


class Ledger:
    """Writer threads on every node: SETs of unique keys, each written once,
    in pipelines of PIPE (so many writes are in flight when the nodes stop).
    acked[key] = value for every write acknowledged with OK."""

    PIPE = 8

    def __init__(self, cluster):
        self.cluster = cluster
        self.acked = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(nd,), daemon=True)
                        for nd in cluster.nodes.values()]

    def _run(self, nd):
        n = 0
        conn = None
        while not self.stopping.is_set():
            if conn is None:
                conn = nd.client(socket_timeout=2, socket_connect_timeout=1)
            batch = []
            pipe = conn.pipeline(transaction=False)
            for _ in range(self.PIPE):
                n += 1
                batch.append((f"ledger:{nd.id}:{n}", f"v{n}"))
                pipe.set(*batch[-1])
            try:
                res = pipe.execute(raise_on_error=False)
            except (redis.RedisError, OSError):
                res = None
            ok = [kv for kv, r in zip(batch, res or []) if r is True]
            with self.lock:
                self.acked.update(ok)
            if res is None or len(ok) < len(batch):
                conn.close()
                conn = None
                self.stopping.wait(0.05)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=10)

    def count(self):
        with self.lock:
            return len(self.acked)

    def verify(self):
        """Every acknowledged key reads back (strong reads, through each live node)."""
        with self.lock:
            acked = dict(self.acked)
        keys = sorted(acked)
        lost = []
        for nd in self.cluster.nodes.values():
            if not nd.alive():
                continue
            c = nd.client(socket_timeout=10)
            try:
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    got = c.mget(chunk)
                    lost += [(nd.id, k, acked[k], v) for k, v in zip(chunk, got)
                             if v != acked[k].encode()]
            finally:
                c.close()
        assert not lost, (f"{len(lost)} acknowledged writes lost or changed (node, key, "
                          f"written, read): {lost[:20]}\n" + self.cluster.all_logs(3000))
        return len(keys)


def wait_progress(wl, ledger, timeout=20.0):
    """Poll until the workload and the ledger both complete new writes."""
    ok0, led0 = wl.counts()[0], ledger.count()
    deadline = time.monotonic() + timeout
    while wl.counts()[0] <= ok0 + 20 or ledger.count() <= led0 + 20:
        assert time.monotonic() < deadline, "no progress under load after the restart"
        time.sleep(0.05)


def restart_pattern(cluster, pattern, rnd, old):
    """Start the stopped nodes as `pattern` says; returns the nodes left down."""
    nodes = list(cluster.nodes.values())
    others = [nd for nd in nodes if nd is not old]
    if pattern == "all":
        rnd.shuffle(nodes)
        cluster.start_some(nodes)
        return []
    if pattern in ("old-first", "old-last"):
        rnd.shuffle(others)
        order = [old] + others if pattern == "old-first" else others + [old]
        majority = len(nodes) // 2 + 1
        for i, nd in enumerate(order):
            cluster.start_some([nd])
            if i + 1 == majority:
                # a majority is up: it must serve before the rest come back
                took = serve_probe(cluster, tag=f"order{i}")
                cluster.log(f"{pattern}: nodes {[x.id for x in order[:i + 1]]} serve after {took:.2f}s")
        return []
    if pattern == "without-old":
        cluster.start_some(others)
        return [old]
    if pattern == "during-recovery":
        cluster.start_some(nodes)
        # While the cluster recovers (no leader serving yet): as soon as a
        # leader appears that is still recovering, or at a random moment
        # before any serves, kill -9 one node and start it again.
        conns = {i: nd.client(socket_timeout=1, socket_connect_timeout=1)
                 for i, nd in cluster.nodes.items()}
        t0 = time.monotonic()
        at = t0 + rnd.uniform(0.1, 1.5)
        try:
            while time.monotonic() < t0 + RESTART_BOUND_S:
                infos = {}
                for i, c in conns.items():
                    try:
                        infos[i] = c.info("cluster")
                    except (redis.RedisError, OSError):
                        infos[i] = None
                leaders = [i for i, v in infos.items() if v and v.get("cluster_role") == "leader"]
                recovering = [i for i in leaders if not int(infos[i].get("cluster_serving", 0))]
                if recovering or time.monotonic() >= at or leaders:
                    ld = cluster.nodes[(recovering or leaders or [None])[0]] if leaders else None
                    victim = ld if ld and rnd.random() < 0.5 else rnd.choice(
                        [nd for nd in nodes if nd is not ld])
                    state = ("leader %d recovering" % ld.id if recovering else
                             "leader %d serving" % ld.id if ld else "no leader yet")
                    cluster.log(f"during recovery ({state}): kill -9 and restart node {victim.id}")
                    cluster.during_recovery_hits = getattr(cluster, "during_recovery_hits", []) + [state]
                    cluster.kill9(victim)
                    cluster.restart(victim)
                    return []
        finally:
            for c in conns.values():
                c.close()
        raise AssertionError("no leader elected after the restart\n" + cluster.all_logs(3000))
    raise ValueError(pattern)


def run_restarts(cluster, rounds, patterns, seed=SEED, kill_ratio=0.7):
    """Under load, `rounds` times: stop every node, start them as a pattern
    says, require service; then check the histories and the ledger."""
    rnd = random.Random(seed)
    cluster.log(f"restart rounds: {rounds}, patterns {patterns}, seed {seed}")
    wl = Workload(cluster, think_s=0.001).start()
    ledger = Ledger(cluster).start()
    took = []
    down = []
    try:
        for r in range(rounds):
            wait_progress(wl, ledger)
            for nd in down:          # a node left out last round comes back first
                cluster.restart(nd)
            old = cluster.wait_leader(timeout=RESTART_BOUND_S)
            pattern = patterns[r % len(patterns)]
            cluster.stop_all(kill=rnd.random() < kill_ratio)
            t0 = time.monotonic()
            down = restart_pattern(cluster, pattern, rnd, old)
            serve_probe(cluster)
            took.append((pattern, round(time.monotonic() - t0, 2)))
            cluster.log(f"round {r + 1}: {pattern}, old leader {old.id}, serving after {took[-1][1]}s")
        wait_progress(wl, ledger)
    finally:
        ledger.stop()
        wl.stop()
    if not down:
        cluster.wait_all_serving(timeout=RESTART_BOUND_S)
    report = wl.check(convergence=not down)
    n = ledger.verify()
    hits = getattr(cluster, "during_recovery_hits", None)
    print(f"\n{len(cluster.nodes)} nodes, seed {seed}: restarts (pattern, s to serve): {took}; "
          f"{f'killed during recovery: {hits}; ' if hits else ''}"
          f"ledger: {n} acknowledged writes all present; {report}")
    return down


# ---------------------------------------------------------------------------

def test_full_restart_serves(make_cluster):
    """Regression: after every node of a 3-node cluster stopped, the restarted
    cluster never served (the new leader waited for complete witnesses)."""
    c = make_cluster(3)
    ld = c.wait_leader()
    fol = c.followers(ld)
    assert fol[0].client().set("through-follower", "1") is True   # the CURP fast path
    assert ld.client().set("through-leader", "2") is True
    c.stop_all(kill=False)
    c.start_some(list(c.nodes.values()))
    took = serve_probe(c)
    c.log(f"serving {took:.2f}s after the start")
    for nd in c.nodes.values():
        r = nd.client(socket_timeout=6)
        assert r.get("through-follower") == b"1", f"node {nd.id}"
        assert r.get("through-leader") == b"2", f"node {nd.id}"


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("leader_back", [False, True])
def test_fast_path_write_only_in_memory(make_cluster, n, leader_back):
    """A write completed on the CURP fast path (PIER.EXEC answered synced 0,
    a super-quorum of witnesses answered PIER.RECORD) while the leader was
    cut off from the bus: it exists only in the leader's AOF and in the
    witnesses. Every node is killed; the write must be there after the
    restart, without the old leader or with it."""
    fast_path_only_in_memory(make_cluster(n), leader_back)


def test_fast_path_write_only_in_memory_fsync_always(make_cluster):
    """The same with appendfsync always (records and entries fsynced before
    they are acknowledged)."""
    fast_path_only_in_memory(make_cluster(3, appendfsync="always"), False)


def fast_path_only_in_memory(c, leader_back):
    if c.partition_method != "netns":
        pytest.skip("needs network namespaces (the leader's bus link cut, clients still reach it)")
    ld = c.wait_leader()
    term = int(ld.info()["cluster_term"])
    fol = c.followers(ld)
    witnesses = fol[:len(fol) - (len(fol) - 1) // 2]     # f + ceil(f/2): 2 of 2, 3 of 4
    cid, key, value = random.randrange(1, 1 << 62), "fast-path-key", "only-in-memory"
    for w in witnesses:
        assert w.client().execute_command("PIER.RECORD", term, cid, 1, "SET", key, value) == b"OK"
    c.partition(ld)
    reply = ld.client().execute_command("PIER.EXEC", cid, 1, "SET", key, value)
    assert reply[0] == term and reply[1] > 0 and reply[2] == 0 and reply[3] == b"OK", reply
    c.stop_all(kill=True)          # at once: the others never got the entry
    c.heal()
    c.start_some(fol + ([ld] if leader_back else []))
    serve_probe(c)
    for nd in c.nodes.values():
        if nd.alive():
            assert nd.client(socket_timeout=6).get(key) == value.encode(), f"node {nd.id}"


@pytest.mark.parametrize("n", [3, 5])
def test_full_restart_under_load(make_cluster, n):
    c = make_cluster(n)
    run_restarts(c, 2, ["all"])


def test_restart_in_order(make_cluster):
    """One by one: the old leader first (A-B-C), then the old leader last (C-B-A)."""
    c = make_cluster(3)
    run_restarts(c, 2, ["old-first", "old-last"])


def test_restart_without_old_leader(make_cluster):
    """The old leader never comes back: the others must serve without losing
    any acknowledged write (its own log is gone with it)."""
    c = make_cluster(3)
    down = run_restarts(c, 1, ["without-old"])
    assert down, "the old leader was left down"
    # it comes back at last and catches up
    old = down[0]
    c.restart(old)
    c.wait_all_serving(timeout=RESTART_BOUND_S)
    serve_probe(c, nodes=[old])


def test_restart_during_recovery(make_cluster):
    c = make_cluster(3)
    run_restarts(c, 2, ["during-recovery"])


# ---------------------------------------------------------------------------
# soak (PIER_SOAK=1, `make soak`)

@pytest.mark.soak
@pytest.mark.parametrize("n", [3, 5])
def test_soak_full_restarts(make_cluster, n):
    """Ten full restarts in a row, all at once."""
    c = make_cluster(n)
    run_restarts(c, 10, ["all"])


@pytest.mark.soak
@pytest.mark.parametrize("n", [3, 5])
def test_soak_restart_patterns(make_cluster, n):
    """Ten restarts mixing every pattern (orders, without the old leader,
    killed again during recovery)."""
    c = make_cluster(n)
    run_restarts(c, 10, ["all", "old-first", "without-old", "old-last", "during-recovery"])


# ---------------------------------------------------------------------------
# the operator's view: tools/pier-cluster

def _free_base_port(n):
    """P such that P..P+n-1 and their bus ports (+10000) are all free."""
    import socket
    for _ in range(100):
        base = random.randrange(20000, 30000)
        try:
            socks = []
            for p in list(range(base, base + n)) + list(range(base + 10000, base + 10000 + n)):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_pier_cluster_tool_restart(tmp_path):
    """The issue's steps: start, write, stop every node, start again on the
    same --dir: it must serve and keep the data; another N is refused."""
    import subprocess
    from cluster import PIER_BIN, REPO
    tool = str(REPO / "tools" / "pier-cluster")
    env = dict(os.environ, PIER_SERVER=PIER_BIN)
    base, d = _free_base_port(3), str(tmp_path / "c")

    def run(*args, check=True):
        p = subprocess.run([tool, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=120)
        assert not check or p.returncode == 0, f"pier-cluster {' '.join(args)}: {p.stdout}"
        return p

    try:
        run("start", "3", "--base-port", str(base), "--dir", d)
        r = redis.Redis(port=base + 1, socket_timeout=6)
        assert r.set("a", "1") is True
        run("stop", "--dir", d)
        out = run("start", "3", "--dir", d).stdout        # the ports it had
        assert "restarted from its data" in out, out
        for i in range(3):
            c = redis.Redis(port=base + i, socket_timeout=6)
            assert c.get("a") == b"1", f"node {i + 1}"
            assert c.set(f"after{i}", "x") is True
        run("stop", "--dir", d)
        p = run("start", "5", "--dir", d, check=False)
        assert p.returncode != 0 and "3-node cluster" in p.stdout, p.stdout
    finally:
        run("stop", "--dir", d, check=False)
