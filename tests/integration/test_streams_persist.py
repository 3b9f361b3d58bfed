"""Streams survive restarts: AOF replay (the deterministic XADD / XCLAIM /
XGROUP SETID records), AOF rewrite (stream records in the base file) and
snapshots (SAVE, then a restart without the AOF)."""
import pytest

from conftest import Server, pier_only, rawcmd, wait_for

pytestmark = pier_only

# Fields that legitimately differ after a reload: consumer seen-time (the
# time of the replayed read, as in Redis) and the block counts that stand
# in for Redis's radix-tree figures.
VOLATILE = {b"seen-time", b"radix-tree-keys", b"radix-tree-nodes"}


def strip(v):
    if isinstance(v, list):
        out, i = [], 0
        while i < len(v):
            if isinstance(v[i], bytes) and v[i] in VOLATILE and i + 1 < len(v):
                i += 2
                continue
            out.append(strip(v[i]))
            i += 1
        return out
    return v


def state(c):
    out = {}
    for k in sorted(c.keys("*")):
        if c.type(k) != b"stream":
            continue
        out[k] = strip(rawcmd(c, "XINFO", "STREAM", k, "FULL", "COUNT", "0"))
    return out


def workload(c):
    for i in range(300):
        c.xadd("s1", {"i": i, "pad": "x" * (i % 50)})
    c.xadd("s1", {"exact": 1}, id="99999999999999-5")
    for i in range(1, 200):
        c.xadd("capped", {"i": i}, id=f"{i}-1", maxlen=50, approximate=(i % 2 == 0))
    c.xtrim("capped", maxlen=40, approximate=True)
    c.xdel("s1", *[e[0] for e in c.xrange("s1", count=20)[::3]])
    c.xgroup_create("s1", "g1", id="0")
    c.xgroup_create("s1", "g2", id="$")
    c.xgroup_create("other", "g", id="$", mkstream=True)
    c.xgroup_createconsumer("s1", "g1", "lazy")
    c.xreadgroup("g1", "alice", {"s1": ">"}, count=40)
    c.xreadgroup("g1", "bob", {"s1": ">"}, count=30)
    c.xreadgroup("g1", "carol", {"s1": ">"}, count=5, noack=True)
    c.xreadgroup("g1", "alice", {"s1": "0"}, count=3)  # history: delivery counts grow
    ids = [e[0] for e in c.xrange("s1", count=80)]
    c.xack("s1", "g1", *ids[:10])
    c.xclaim("s1", "g1", "bob", 0, ids[10:15], retrycount=4)
    c.xautoclaim("s1", "g1", "dave", 0, "0", count=5)
    c.xgroup_delconsumer("s1", "g1", "carol")
    c.xgroup_setid("s1", "g2", "0", entries_read=0)
    c.xreadgroup("g2", "eve", {"s1": ">"}, count=7)
    c.execute_command("XSETID", "other", "5-5", "ENTRIESADDED", 3, "MAXDELETEDID", "2-0")


def start(workdir, *args):
    return Server("pier", workdir, args).start()


def restart(workdir, srv, args):
    srv.stop()
    return start(workdir, *args)


def test_aof_replay_and_rewrite(tmp_path):
    args = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
    srv = start(tmp_path, *args)
    c = srv.client()
    workload(c)
    want = state(c)
    assert len(want) == 3
    srv = restart(tmp_path, srv, args)
    assert state(srv.client()) == want
    c = srv.client()
    rewrites = c.info("persistence")["aof_rewrites"]
    assert c.bgrewriteaof() is True
    wait_for(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0
             and c.info("persistence")["aof_rewrites"] > rewrites, timeout=20)
    c.xadd("s1", {"after": "rewrite"})
    want = state(c)
    srv = restart(tmp_path, srv, args)
    assert state(srv.client()) == want
    srv.stop()


def test_snapshot_save_and_load(tmp_path):
    srv = start(tmp_path, "--save", "")
    c = srv.client()
    workload(c)
    want = state(c)
    assert c.save() is True
    srv = restart(tmp_path, srv, ("--save", ""))
    assert state(srv.client()) == want
    srv.stop()
