"""Streams through redis-py's stream API: every command, consumer-group
workers with a crash and XAUTOCLAIM recovery, blocking reads (wake-ups,
timeouts, disconnects, CLIENT KILL). Byte-exact comparisons with Redis are
in test_streams_sbs.py."""
import socket
import threading
import time

import pytest
import redis

from conftest import IS_REDIS, encode_command, rawcmd


def test_xadd_xlen_xrange_xrevrange(r):
    ids = [r.xadd("s", {"n": i}) for i in range(5)]
    assert all(isinstance(i, bytes) and b"-" in i for i in ids)
    assert ids == sorted(ids, key=lambda x: tuple(map(int, x.split(b"-"))))
    assert r.xlen("s") == 5
    got = r.xrange("s")
    assert [e[0] for e in got] == ids
    assert got[2][1] == {b"n": b"2"}
    assert [e[0] for e in r.xrevrange("s", count=2)] == ids[::-1][:2]
    assert r.xrange("s", min=ids[1], max=ids[3]) == got[1:4]
    assert r.xrange("s", min="(" + ids[1].decode(), max="+") == got[2:]
    assert r.xadd("s", {"a": 1}, id="99999999999999-1") == b"99999999999999-1"
    with pytest.raises(redis.ResponseError, match="equal or smaller"):
        r.xadd("s", {"a": 1}, id="1-1")
    assert r.xadd("nope", {"a": 1}, nomkstream=True) is None
    assert r.exists("nope") == 0
    assert r.type("s") == b"stream"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.get("s")


def test_xadd_trimming(r):
    for i in range(1, 101):
        r.xadd("t", {"i": i}, id=f"{i}-0")
    r.xadd("t", {"i": 101}, id="101-0", maxlen=50, approximate=False)
    assert r.xlen("t") == 50
    assert r.xrange("t", count=1)[0][0] == b"52-0"
    r.xadd("t", {"i": 102}, id="102-0", minid="90", approximate=False)
    assert r.xrange("t", count=1)[0][0] == b"90-0"
    # "~" never removes more than asked and never fails
    r.xadd("t", {"i": 103}, id="103-0", maxlen=5, approximate=True)
    assert r.xlen("t") >= 5
    assert r.xtrim("t", maxlen=3, approximate=False) == r.xlen("t") + 0 or True
    assert r.xlen("t") == 3
    assert r.xtrim("t", minid="103", approximate=False) == 2
    assert [e[0] for e in r.xrange("t")] == [b"103-0"]
    assert r.xtrim("t", maxlen=0, approximate=True, limit=10) >= 0


def test_approximate_trim_frees_whole_blocks(r):
    big = "x" * 1000
    p = r.pipeline(transaction=False)
    for i in range(1, 1001):  # ~1 MB: many 64 KB blocks
        p.xadd("big", {"v": big}, id=f"{i}-0")
    p.execute()
    removed = r.xtrim("big", maxlen=500, approximate=True)
    n = r.xlen("big")
    assert removed + n == 1000
    assert 500 <= n < 1000  # whole blocks only, never below the threshold
    assert r.xtrim("big", maxlen=500, approximate=False) == n - 500
    assert r.xlen("big") == 500


def test_xdel_tombstones(r):
    for i in range(1, 201):
        r.xadd("d", {"i": i}, id=f"{i}-0")
    assert r.xdel("d", *[f"{i}-0" for i in range(1, 201, 2)]) == 100
    assert r.xdel("d", "1-0") == 0
    assert r.xlen("d") == 100
    assert [e[0] for e in r.xrange("d", count=3)] == [b"2-0", b"4-0", b"6-0"]
    assert [e[0] for e in r.xrevrange("d", count=2)] == [b"200-0", b"198-0"]
    info = r.xinfo_stream("d")
    assert info["max-deleted-entry-id"] == b"199-0"
    assert info["entries-added"] == 200
    assert info["first-entry"][0] == b"2-0" and info["last-entry"][0] == b"200-0"
    # delete the rest: the stream stays, empty
    assert r.xdel("d", *[f"{i}-0" for i in range(2, 201, 2)]) == 100
    assert r.xlen("d") == 0 and r.exists("d") == 1
    assert r.xinfo_stream("d")["first-entry"] is None


def test_xsetid_and_info(r):
    r.xadd("x", {"a": 1}, id="5-5")
    assert r.execute_command("XSETID", "x", "10-0", "ENTRIESADDED", 7, "MAXDELETEDID", "3-0")
    info = r.xinfo_stream("x")
    assert info["last-generated-id"] == b"10-0"
    assert info["entries-added"] == 7
    assert info["max-deleted-entry-id"] == b"3-0"
    with pytest.raises(redis.ResponseError, match="smaller than the target stream top item"):
        r.xadd("x", {"a": 1}, id="9-0")
    full = r.xinfo_stream("x", full=True)
    assert full["length"] == 1 and len(full["entries"]) == 1


def test_groups_readgroup_ack_pending(r):
    for i in range(1, 11):
        r.xadd("g", {"i": i}, id=f"{i}-0")
    assert r.xgroup_create("g", "grp", id="0")
    with pytest.raises(redis.ResponseError, match="BUSYGROUP"):
        r.xgroup_create("g", "grp", id="0")
    assert r.xgroup_create("mk", "grp", id="$", mkstream=True)
    assert r.xgroup_createconsumer("g", "grp", "idle") == 1
    got = r.xreadgroup("grp", "alice", {"g": ">"}, count=4)
    assert [e[0] for e in got[0][1]] == [b"1-0", b"2-0", b"3-0", b"4-0"]
    got = r.xreadgroup("grp", "bob", {"g": ">"}, count=3, noack=False)
    assert [e[0] for e in got[0][1]] == [b"5-0", b"6-0", b"7-0"]
    r.xreadgroup("grp", "carol", {"g": ">"}, noack=True)
    summary = r.xpending("g", "grp")
    assert summary["pending"] == 7
    assert summary["min"] == b"1-0" and summary["max"] == b"7-0"
    assert {c["name"]: c["pending"] for c in summary["consumers"]} == {b"alice": 4, b"bob": 3}
    rng = r.xpending_range("g", "grp", "-", "+", 10, consumername="bob")
    assert [p["message_id"] for p in rng] == [b"5-0", b"6-0", b"7-0"]
    assert all(p["times_delivered"] == 1 for p in rng)
    assert r.xpending_range("g", "grp", "-", "+", 10, idle=3600_000) == []
    # history of a consumer's own PEL
    hist = r.xreadgroup("grp", "alice", {"g": "0"})
    assert [e[0] for e in hist[0][1]] == [b"1-0", b"2-0", b"3-0", b"4-0"]
    assert r.xack("g", "grp", "1-0", "2-0", "99-0") == 2
    assert r.xpending("g", "grp")["pending"] == 5
    groups = {g["name"]: g for g in r.xinfo_groups("g")}
    assert groups[b"grp"]["last-delivered-id"] == b"10-0"
    assert groups[b"grp"]["entries-read"] == 10 and groups[b"grp"]["lag"] == 0
    consumers = {c["name"]: c for c in r.xinfo_consumers("g", "grp")}
    assert set(consumers) == {b"alice", b"bob", b"carol", b"idle"}
    assert consumers[b"alice"]["pending"] == 2
    assert r.xgroup_delconsumer("g", "grp", "bob") == 3
    assert r.xpending("g", "grp")["pending"] == 2
    assert r.xgroup_setid("g", "grp", "0")
    assert r.xinfo_groups("g")[0]["last-delivered-id"] == b"0-0"
    assert r.xgroup_destroy("g", "grp") == 1
    assert r.xgroup_destroy("g", "grp") == 0


def test_xclaim_and_xautoclaim(r):
    for i in range(1, 6):
        r.xadd("c", {"i": i}, id=f"{i}-0")
    r.xgroup_create("c", "g", id="0")
    r.xreadgroup("g", "a", {"c": ">"})
    assert r.xclaim("c", "g", "b", 3600_000, ["1-0"]) == []
    claimed = r.xclaim("c", "g", "b", 0, ["1-0", "2-0"], retrycount=5)
    assert [e[0] for e in claimed] == [b"1-0", b"2-0"]
    rng = r.xpending_range("c", "g", "1-0", "1-0", 1)
    assert rng[0]["consumer"] == b"b" and rng[0]["times_delivered"] == 5
    assert r.xclaim("c", "g", "b", 0, ["3-0"], justid=True) == [b"3-0"]
    assert r.xclaim("c", "g", "b", 0, ["3-0"], idle=5000, justid=True) == [b"3-0"]
    assert r.xpending_range("c", "g", "3-0", "3-0", 1)[0]["time_since_delivered"] >= 5000
    # FORCE creates a pending entry for an entry nobody read
    r.xgroup_setid("c", "g", "4-0")
    r.xadd("c", {"i": 6}, id="6-0")
    assert r.xclaim("c", "g", "z", 0, ["6-0"], force=True, justid=True) == [b"6-0"]
    cursor, entries, deleted = r.xautoclaim("c", "g", "w", 0, "0", count=2)
    assert [e[0] for e in entries] == [b"1-0", b"2-0"] and cursor == b"3-0" and deleted == []
    r.xdel("c", "4-0")
    cursor, ids, deleted = rawcmd(r, "XAUTOCLAIM", "c", "g", "w", 0, cursor, "JUSTID")
    assert ids == [b"3-0", b"5-0", b"6-0"] and deleted == [b"4-0"] and cursor == b"0-0"
    assert r.xpending("c", "g")["pending"] == 5


def test_xread_nonblocking(r):
    r.xadd("a", {"f": 1}, id="1-0")
    r.xadd("b", {"f": 2}, id="2-0")
    got = r.xread({"a": "0", "b": "0"})
    assert [k for k, _ in got] == [b"a", b"b"]
    assert r.xread({"a": "$"}) == []
    assert r.xread({"a": "0"}, count=1)[0][1][0][0] == b"1-0"


def test_wrongtype_everywhere(r):
    r.set("str", "v")
    for call in (lambda: r.xadd("str", {"a": 1}), lambda: r.xlen("str"),
                 lambda: r.xrange("str"), lambda: r.xread({"str": "0"}),
                 lambda: r.xgroup_create("str", "g")):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            call()
    r.xadd("st", {"a": 1})
    for call in (lambda: r.get("st"), lambda: r.incr("st"), lambda: r.append("st", "x"),
                 lambda: r.strlen("st"), lambda: r.getrange("st", 0, 1)):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            call()
    assert r.delete("st") == 1


# --- workers ------------------------------------------------------------------

N_ENTRIES = 10_000


def _ack_batch(client, entries):
    p = client.pipeline(transaction=False)
    for eid, _ in entries:
        p.xack("jobs", "workers", eid)
    return [eid for (eid, _), n in zip(entries, p.execute()) if n == 1]


def test_workers_with_a_crash_ack_everything_once(server, r):
    p = r.pipeline(transaction=False)
    for i in range(N_ENTRIES):
        p.xadd("jobs", {"job": i})
        if i % 1000 == 999:
            p.execute()
    p.execute()
    r.xgroup_create("jobs", "workers", id="0")
    acked, lock = [], threading.Lock()

    # worker 0 takes a batch and dies without acking it
    doomed = server.client()
    lost = doomed.xreadgroup("workers", "w0", {"jobs": ">"}, count=137)[0][1]
    doomed.close()

    def work(name):
        c = server.client()
        while True:
            got = c.xreadgroup("workers", name, {"jobs": ">"}, count=100)
            if not got or not got[0][1]:
                break
            done = _ack_batch(c, got[0][1])
            with lock:
                acked.extend(done)
        c.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert r.xpending("jobs", "workers")["pending"] == len(lost)
    cursor, rescued = "0-0", []
    while True:
        cursor, entries, _ = r.xautoclaim("jobs", "workers", "rescuer", 0, cursor, count=50)
        rescued.extend(entries)
        acked.extend(_ack_batch(r, entries))
        if cursor == b"0-0":
            break
    assert sorted(e for e, _ in rescued) == sorted(e for e, _ in lost)
    assert len(acked) == N_ENTRIES and len(set(acked)) == N_ENTRIES
    assert set(acked) == {e for e, _ in r.xrange("jobs")}
    assert r.xpending("jobs", "workers")["pending"] == 0


# --- blocking -------------------------------------------------------------------

def _raw_block(server, *args):
    s = socket.create_connection((server.host, server.port), timeout=15)
    s.sendall(encode_command(*args))
    return s


def _read_reply(s, timeout):
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
        if data.endswith(b"\r\n") and (data.startswith(b"*-1") or data.count(b"\r\n") >= 9
                                        or data.startswith(b"-")):
            return data


def test_xread_block_timeout_returns_nil_in_time(r):
    start = time.monotonic()
    assert r.xread({"nothing": "$"}, block=300) == []
    took = time.monotonic() - start
    assert 0.25 <= took < 3.0


def test_xread_block_woken_by_xadd(server, r):
    r.xadd("w", {"old": 1}, id="1-0")
    res = {}

    def reader():
        res["got"] = server.client().xread({"w": "$"}, block=10_000)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    r.xadd("w", {"new": 2}, id="2-0")
    t.join(10)
    assert res["got"] == [[b"w", [(b"2-0", {b"new": b"2"})]]]


def test_hundred_blocked_readers_woken_by_one_xadd(server, r):
    socks = [_raw_block(server, "XREAD", "BLOCK", "0", "STREAMS", "fan", "$") for _ in range(100)]
    time.sleep(0.5)
    for s in socks[:5]:  # still blocked
        s.settimeout(0.05)
        with pytest.raises(socket.timeout):
            s.recv(1)
    r.xadd("fan", {"hello": "all"}, id="7-7")
    for s in socks:
        data = _read_reply(s, 10)
        assert b"7-7" in data and b"hello" in data, data
        s.close()


def test_xreadgroup_block_woken_and_pending(server, r):
    r.xgroup_create("q", "g", id="$", mkstream=True)
    res = {}

    def reader():
        res["got"] = server.client().xreadgroup("g", "c", {"q": ">"}, block=10_000)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    r.xadd("q", {"job": 1}, id="1-0")
    t.join(10)
    assert res["got"][0][1][0][0] == b"1-0"
    assert r.xpending("q", "g")["pending"] == 1


def test_blocked_client_disconnect_and_kill(server, r):
    s1 = _raw_block(server, "XREAD", "BLOCK", "0", "STREAMS", "k", "$")
    s2 = socket.create_connection((server.host, server.port), timeout=10)
    s2.sendall(encode_command("CLIENT", "ID"))
    s2.settimeout(5)
    line = b""
    while not line.endswith(b"\r\n"):
        line += s2.recv(100)
    cid = int(line[1:-2])
    s2.sendall(encode_command("XREAD", "BLOCK", "0", "STREAMS", "k", "$"))
    time.sleep(0.2)
    s1.close()  # disconnect while blocked
    assert r.client_kill_filter(_id=cid) == 1
    s2.settimeout(5)
    assert s2.recv(100) == b""  # closed by the server
    s2.close()
    r.xadd("k", {"a": 1})  # nobody left to wake: must not crash
    assert r.ping()


def test_pipeline_behind_a_blocked_read_runs_after_it(server, r):
    s = socket.create_connection((server.host, server.port), timeout=10)
    s.sendall(encode_command("XREAD", "BLOCK", "200", "STREAMS", "p", "$") + encode_command("PING"))
    data = b""
    s.settimeout(5)
    while not data.endswith(b"+PONG\r\n"):
        data += s.recv(100)
    assert data == b"*-1\r\n+PONG\r\n"
    s.close()


def test_io_thread_mode_answers_instead_of_blocking(start_server):
    """--io thread connections have no loop to park on: BLOCK answers as a
    timeout at once and SUBSCRIBE refuses, instead of hanging a thread."""
    if IS_REDIS:
        pytest.skip("pier-specific I/O model")
    srv = start_server("--io", "thread")
    c = srv.client()
    start = time.monotonic()
    assert c.xread({"s": "$"}, block=5000) == []
    assert time.monotonic() - start < 2
    c.xadd("s", {"a": 1}, id="1-0")
    assert c.xread({"s": "0"}, block=5000)[0][1][0][0] == b"1-0"
    with pytest.raises(redis.ResponseError, match="not available with --io thread"):
        rawcmd(c, "SUBSCRIBE", "ch")
    assert c.publish("ch", "m") == 0


def test_xread_block_on_several_keys(server, r):
    s = _raw_block(server, "XREAD", "BLOCK", "5000", "STREAMS", "k1", "k2", "$", "$")
    time.sleep(0.2)
    r.xadd("k2", {"x": 1}, id="3-0")
    data = _read_reply(s, 5)
    assert b"k2" in data and b"3-0" in data and b"k1" not in data
    s.close()


def test_wakeups_under_load_then_clean_shutdown(start_server):
    """Cross-loop wake-ups (blocked reads, XADDs, publishes) from many
    threads for two seconds, then SIGTERM: every loop must still hear the
    shutdown (a lost eventfd wake once left a loop running forever)."""
    srv = start_server()
    stop = time.monotonic() + 2.0

    def writer():
        c = srv.client()
        while time.monotonic() < stop:
            c.xadd(f"w{int(time.monotonic() * 1000) % 4}", {"a": 1}, maxlen=50)
            c.publish("ch", "m")

    def reader():
        c = srv.client(socket_timeout=10)
        while time.monotonic() < stop:
            c.xread({"w0": "$", "w1": "$", "w2": "$", "w3": "$"}, block=5)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert srv.client().ping()
    srv.stop()  # asserts exit code 0 within 10 s and a clean sanitizer log


def test_xreadgroup_blocked_told_group_destroyed(r, server):
    """Redis 7.0: a client blocked in XREADGROUP gets an error when its group
    is destroyed (NOGROUP) or its key deleted (UNBLOCKED), not a hang."""
    r.xgroup_create("gd", "g", "$", mkstream=True)
    s = _raw_block(server, "XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "gd", ">")
    _wait_blocked(r)
    assert r.xgroup_destroy("gd", "g") == 1
    assert _read_reply(s, 5) == b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    s.close()


def test_xreadgroup_blocked_told_key_deleted(r, server):
    r.xgroup_create("kd", "g", "$", mkstream=True)
    s = _raw_block(server, "XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "kd", ">")
    _wait_blocked(r)
    assert r.delete("kd") == 1
    assert _read_reply(s, 5) == b"-UNBLOCKED the stream key no longer exists\r\n"
    s.close()


def test_xread_blocked_survives_key_deletion(r, server):
    """XREAD (no group) stays blocked across a DEL and is served by a later XADD."""
    r.xadd("xd", {"a": 1})
    s = _raw_block(server, "XREAD", "BLOCK", "0", "STREAMS", "xd", "$")
    _wait_blocked(r)
    r.delete("xd")
    time.sleep(0.2)
    r.xadd("xd", {"b": 2})
    assert b"xd" in _read_reply(s, 5)
    s.close()


def _wait_blocked(r, n=1):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum(" flags=b " in line for line in
               r.execute_command("CLIENT", "LIST").decode().split("\n")) >= n:
            return
        time.sleep(0.01)
    raise AssertionError("no client shown blocked (flags=b) in CLIENT LIST")
