"""Fault tests of cluster mode (spec: strong ops linearizable, weak ops keep the
session guarantees, a new leader serves within 2 s of the old one's death).

Each fault test runs the workload (workload.py) on a 3-node cluster, injects
one fault, heals, then checks: the strong history (with final strong reads of
every key on every node) is linearizable, so no acknowledged write was lost;
the weak history keeps the session guarantees; weak reads converge; clients
not cut off by the fault kept completing strong ops; node logs hold no
sanitizer report and every node exits 0 on SIGTERM.
"""
import os
import random
import time

import pytest
import redis

from workload import Workload

FAILOVER_BOUND_S = float(os.environ.get("PIER_FAILOVER_BOUND", "2.0"))


def run_with_fault(cluster, fault, warm=1.0, after=2.0, **wl_kw):
    wl = Workload(cluster, **wl_kw).start()
    try:
        time.sleep(warm)
        ok0, _ = wl.counts()
        assert ok0 > 0, "workload made no progress before the fault\n" + cluster.all_logs()
        measured = fault(cluster, wl) or {}
        time.sleep(after)
    finally:
        wl.stop()
    cluster.heal_all()
    cluster.wait_all_serving()
    report = wl.check()
    ok, info = wl.counts()
    print(f"\n{cluster.partition_method}: {ok} ok ops, {info} info ops; {measured}; {report}")
    return wl, measured


def progress_after(wl, t0, nodes, t1=None):
    """Strong ops completed in [t0, t1] by clients bound to the given nodes."""
    names = {f"c{nd.id}" for nd in nodes}
    return [o for o in wl.ops_between(t0, t1 or time.monotonic())
            if str(o.client)[:-1] in names]


def wait_new_leader(cluster, old, t0):
    new = cluster.wait_leader(exclude=[old], timeout=10)
    return new, time.monotonic() - t0


# ---------------------------------------------------------------------------

def test_write_visible_everywhere(make_cluster):
    c = make_cluster(3)
    n1 = c.nodes[1]
    r1 = n1.client()
    assert r1.set("greeting", "hello") is True
    for nd in c.nodes.values():
        assert nd.client().get("greeting") == b"hello", f"strong read on node {nd.id}"
    for nd in c.nodes.values():
        w = nd.client()
        assert w.execute_command("PIER.CONSISTENCY", "WEAK") in (b"OK", True)
        assert w.execute_command("PIER.CONSISTENCY") in (b"weak", "weak")
        deadline = time.monotonic() + 5
        while w.get("greeting") != b"hello":
            assert time.monotonic() < deadline, f"weak read on node {nd.id} never saw the write"
            time.sleep(0.05)
    # a weak write on one node: read-your-writes at once, then visible everywhere
    w2 = c.nodes[2].client()
    w2.execute_command("PIER.CONSISTENCY", "WEAK")
    assert w2.set("weak-key", "v1") is True
    assert w2.get("weak-key") == b"v1"
    for nd in c.nodes.values():
        deadline = time.monotonic() + 5
        while nd.client().get("weak-key") != b"v1":   # strong read
            assert time.monotonic() < deadline, f"weak write never reached node {nd.id}"
            time.sleep(0.05)


def test_leader_kill9_and_restart(make_cluster):
    c = make_cluster(3)

    def fault(cl, wl):
        old = cl.wait_leader()
        survivors = cl.followers(old)
        t0 = time.monotonic()
        cl.kill9(old)
        new, failover = wait_new_leader(cl, old, t0)
        cl.log(f"new leader node {new.id} serving {failover:.3f}s after the kill")
        time.sleep(1.0)
        served = progress_after(wl, t0, survivors)
        first = min((o.complete for o in served), default=None)
        assert served, "no strong op completed on the survivors after the leader died"
        cl.restart(old)
        return {"failover_s": round(failover, 3),
                "first_op_after_kill_s": round(first - t0, 3) if first else None}

    _, m = run_with_fault(c, fault)
    print(f"leader kill -9: new leader serving after {m['failover_s']}s "
          f"(first strong op completed {m['first_op_after_kill_s']}s after the kill)")
    assert m["failover_s"] < FAILOVER_BOUND_S, f"failover took {m['failover_s']}s"


def test_follower_pause(make_cluster):
    c = make_cluster(3)

    def fault(cl, wl):
        ld = cl.wait_leader()
        f = cl.followers(ld)[0]
        t0 = time.monotonic()
        cl.pause(f)
        time.sleep(2.0)
        cl.resume(f)
        served = progress_after(wl, t0, [ld] + [x for x in cl.followers(ld) if x is not f], t0 + 2.0)
        assert served, "no strong op completed on the other nodes while a follower was paused"
        return {"ops_during_pause": len(served)}

    run_with_fault(c, fault)


def test_leader_partitioned_from_majority(make_cluster):
    c = make_cluster(3)

    def fault(cl, wl):
        old = cl.wait_leader()
        majority = cl.followers(old)
        t0 = time.monotonic()
        cl.partition(old)
        new, failover = wait_new_leader(cl, old, t0)
        cl.log(f"new leader node {new.id} serving {failover:.3f}s after the partition")
        time.sleep(2.0)
        served = progress_after(wl, t0, majority)
        assert served, "no strong op completed on the majority side"
        cl.heal()
        return {"failover_s": round(failover, 3), "ops_on_majority": len(served)}

    _, m = run_with_fault(c, fault)
    print(f"leader partitioned: new leader serving after {m['failover_s']}s")
    assert m["failover_s"] < FAILOVER_BOUND_S, f"failover took {m['failover_s']}s"


def test_follower_partitioned(make_cluster):
    c = make_cluster(3)

    def fault(cl, wl):
        ld = cl.wait_leader()
        f = cl.followers(ld)[0]
        t0 = time.monotonic()
        cl.partition(f)
        time.sleep(3.0)
        cl.heal()
        served = progress_after(wl, t0, [x for x in cl.nodes.values() if x is not f], t0 + 3.0)
        assert served, "no strong op completed on the majority while a follower was cut off"
        return {"ops_on_majority": len(served)}

    run_with_fault(c, fault)


def test_five_nodes_leader_kill(make_cluster):
    c = make_cluster(5)
    ld = c.wait_leader()
    other = c.followers(ld)[0]
    assert other.client().set("k", "before") is True
    t0 = time.monotonic()
    c.kill9(ld)
    new, failover = wait_new_leader(c, ld, t0)
    print(f"\n5 nodes: new leader node {new.id} serving {failover:.3f}s after the kill")
    for i, nd in enumerate(c.followers(ld)):
        expect = b"before" if i == 0 else f"after{i - 1}".encode()
        assert nd.client().get("k") == expect, f"strong read on node {nd.id}"
        assert nd.client().set("k", f"after{i}") is True
        for x in c.followers(ld):
            assert x.client().get("k") == f"after{i}".encode(), f"strong read on node {x.id}"
    c.restart(ld)
    last = f"after{len(c.followers(ld)) - 1}".encode()
    assert ld.client(socket_timeout=5).get("k") == last
    assert failover < FAILOVER_BOUND_S, f"failover took {failover:.3f}s"


# ---------------------------------------------------------------------------
# soak: minutes of repeated faults (PIER_SOAK=1, `make soak`)

SOAK_S = float(os.environ.get("PIER_SOAK_SECONDS", "180"))


@pytest.mark.soak
@pytest.mark.parametrize("n", [3, 5])
def test_soak_repeated_faults(make_cluster, n):
    c = make_cluster(n)
    rnd = random.Random(int(os.environ.get("PIER_SOAK_SEED", str(random.randrange(1 << 30)))))
    failovers = []

    def faults(cl, wl):
        end = time.monotonic() + SOAK_S
        rounds = 0
        while time.monotonic() < end:
            rounds += 1
            ld = cl.wait_leader(timeout=15)
            fol = cl.followers(ld)
            kind = rnd.choice(["kill-leader", "kill-follower", "pause-leader", "pause-follower",
                               "partition-leader", "partition-follower", "partition-minority"])
            hold = rnd.uniform(0.5, 4.0)
            t0 = time.monotonic()
            if kind == "kill-leader":
                cl.kill9(ld)
                failovers.append(wait_new_leader(cl, ld, t0)[1])
                time.sleep(hold)
                cl.restart(ld)
            elif kind == "kill-follower":
                f = rnd.choice(fol)
                cl.kill9(f)
                time.sleep(hold)
                cl.restart(f)
            elif kind in ("pause-leader", "pause-follower"):
                x = ld if kind == "pause-leader" else rnd.choice(fol)
                cl.pause(x)
                time.sleep(hold)
                cl.resume(x)
            elif kind == "partition-leader":
                cl.partition(ld)
                failovers.append(wait_new_leader(cl, ld, t0)[1])
                time.sleep(hold)
                cl.heal()
            else:
                k = 1 if kind == "partition-follower" or n == 3 else 2
                side = rnd.sample(fol, k) if kind == "partition-follower" else [ld] + rnd.sample(fol, k - 1)
                for x in side:
                    cl.partition(x)
                time.sleep(hold)
                cl.heal()
            cl.heal_all()
            time.sleep(rnd.uniform(0.5, 2.0))
        return {"rounds": rounds}

    _, m = run_with_fault(c, faults, after=1.0)
    print(f"soak n={n}: {m['rounds']} faults; failovers (s): "
          f"{', '.join(f'{x:.2f}' for x in failovers)}")
    slow = [x for x in failovers if x >= FAILOVER_BOUND_S]
    assert not slow, f"failovers slower than {FAILOVER_BOUND_S}s: {slow}"


def test_leader_pause_counters_agree(make_cluster):
    """Regression (review of the first cluster build): a leader paused while
    it had executed INCRs it had not replicated kept them in its keyspace
    after it stepped down, so its counter ran ahead of the others' for good.
    Every node must end with the same counter, within the successful INCRs
    and the ones whose outcome is unknown."""
    import threading
    c = make_cluster(3)
    ld = c.wait_leader()
    done = {"ok": 0, "unknown": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def incr_loop(node):
        r = node.client(socket_timeout=2)
        while not stop.is_set():
            try:
                pipe = r.pipeline(transaction=False)
                for _ in range(32):
                    pipe.incr("ctr")
                res = pipe.execute(raise_on_error=False)
                with lock:
                    for x in res:
                        if isinstance(x, int):
                            done["ok"] += 1
                        else:
                            done["unknown"] += 1
            except Exception:
                with lock:
                    done["unknown"] += 32
                time.sleep(0.05)
                r = node.client(socket_timeout=2)

    threads = [threading.Thread(target=incr_loop, args=(nd,))
               for nd in c.nodes.values() for _ in range(4 if nd is ld else 1)]
    for t in threads:
        t.start()
    for _ in range(3):  # the leader is paused mid-stream: some INCRs are executed, not replicated
        time.sleep(1.0)
        ld = c.wait_leader()
        c.pause(ld)
        time.sleep(2.0)
        c.resume(ld)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    c.wait_all_serving()
    deadline = time.monotonic() + 10
    while True:
        values = []
        for nd in c.nodes.values():
            r = nd.client(socket_timeout=2)
            r.execute_command("PIER.CONSISTENCY", "WEAK")
            values.append(int(r.get("ctr") or 0))
        if len(set(values)) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(f"\ncounters {values}; {done}")
    assert len(set(values)) == 1, f"nodes disagree on the counter: {values}\n" + c.all_logs()
    assert done["ok"] <= values[0] <= done["ok"] + done["unknown"], (values, done)


def test_write_that_changed_nothing_is_never_applied_later(make_cluster):
    """Regression: a strong write through a follower that changed nothing
    (SET NX on an existing key: nil) wrote no log entry, so its witness
    records stayed; about 2 s later they went back to the leader as stale
    records and it executed them again: after a DEL, the SET NX its client
    saw fail took effect. Every record must go once the write is done."""
    c = make_cluster(3)
    ld = c.wait_leader()
    f = c.followers(ld)[0]
    r = f.client()
    assert r.set("nx-key", "a") is True
    assert r.set("nx-key", "b", nx=True) is None
    assert r.set("err-key", "abc") is True
    with pytest.raises(redis.ResponseError):
        r.incr("err-key")                      # an error changes nothing either
    deadline = time.monotonic() + 10
    while True:
        counts = {nd.id: int(nd.info()["cluster_witness_records"]) for nd in c.nodes.values()}
        if not any(counts.values()):
            break
        assert time.monotonic() < deadline, f"witness records never dropped: {counts}"
        time.sleep(0.05)
    assert ld.client().delete("nx-key") == 1
    assert ld.client().set("err-key", "5") is True
    for nd in c.nodes.values():
        assert nd.client().get("nx-key") is None, f"node {nd.id}"
        assert nd.client().get("err-key") == b"5", f"node {nd.id}"
