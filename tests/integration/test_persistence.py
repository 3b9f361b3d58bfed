"""Persistence: AOF replay of every write command against a model, AOF
rewrite (manual, under concurrent writes), truncated and corrupt files,
snapshots (SAVE, BGSAVE, LASTSAVE, shutdown save), expiry across restarts,
the persistence options and INFO fields.

Servers are restarted on the same working directory; `dir` defaults to
".", which the fixtures set to that directory."""
import hashlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from conftest import PIER_BIN, Server, pier_only, rawcmd, wait_for

pytestmark = pier_only


# ---------------------------------------------------------------------------
# helpers

_started = []  # every server a test started, killed at teardown if still up


@pytest.fixture(autouse=True)
def _kill_leftover_servers():
    """A failed assertion must not leave a server running (the tests start
    servers directly, to restart them on the same directory)."""
    yield
    while _started:
        s = _started.pop()
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
            s._close_files()


def server_on(workdir, *args):
    s = Server("pier", workdir, args)
    _started.append(s)
    return s


def start(workdir, *args):
    return server_on(workdir, *args).start()


def kill9(srv):
    """Crash the server: no final flush, no final save."""
    for c in srv.clients:
        try:
            c.close()
        except Exception:
            pass
    srv.clients = []
    srv.proc.kill()
    srv.proc.wait()
    srv._close_files()


def now_ms():
    return int(time.time() * 1000)


def info_persistence(c):
    return c.info("persistence")


def wait_rewrite_done(c, rewrites_before):
    wait_for(lambda: info_persistence(c)["aof_rewrite_in_progress"] == 0
             and info_persistence(c)["aof_rewrites"] > rewrites_before,
             timeout=20, msg="AOF rewrite to finish")


def dump_state(c):
    """{key: (value, pexpiretime)} of the whole keyspace."""
    state = {}
    for k in c.keys("*"):
        state[k] = (c.get(k), c.pexpiretime(k))
    return state


def run_pier_expecting_failure(workdir, *args, timeout=20):
    """Start pier on workdir expecting it to refuse to start."""
    proc = subprocess.run([PIER_BIN, "--port", "0", "--bind", "127.0.0.1", "--save", ""]
                          + [str(a) for a in args], cwd=str(workdir),
                          capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def incr_files(workdir):
    return sorted((Path(workdir) / "appendonlydir").glob("*.incr.aof"),
                  key=lambda p: int(p.name.split(".")[-3]))


# ---------------------------------------------------------------------------
# the model

class Model:
    """The expected dataset: key -> [value bytes, absolute expire ms or None]."""

    def __init__(self):
        self.d = {}

    def set(self, k, v, exp=None, keepttl=False):
        old = self.d.get(k)
        if keepttl and old is not None:
            exp = old[1]
        self.d[k] = [v, exp]

    def delete(self, k):
        return self.d.pop(k, None) is not None

    def ttl(self, k):
        return self.d[k][1]

    def check(self, c, tolerance_ms=5000):
        state = dump_state(c)
        keys = {k.decode() if isinstance(k, bytes) else k for k in state}
        assert keys == set(self.d), f"keys differ: extra {keys - set(self.d)}, " \
                                    f"missing {set(self.d) - keys}"
        for k, (v, exp) in self.d.items():
            got_v, got_exp = state[k.encode()]
            assert got_v == v, f"{k}: value {got_v!r} != {v!r}"
            if exp is None:
                assert got_exp == -1, f"{k}: expected no TTL, got {got_exp}"
            else:
                assert abs(got_exp - exp) <= tolerance_ms, f"{k}: expire {got_exp} vs {exp}"
        return state


def run_every_write_command(c, m, flush=True):
    """Exercise every write command, keeping the model in step. Returns
    nothing; asserts the replies that decide what the model does."""
    t = now_ms()
    if flush:  # FLUSHALL / FLUSHDB first, so they are replayed before the rest
        c.set("junk1", "x")
        assert c.flushall() is True
        c.set("junk2", "y")
        assert c.flushdb() is True
        m.d.clear()

    c.set("k1", "v1"); m.set("k1", b"v1")
    c.set("k2", "v2", ex=1000); m.set("k2", b"v2", t + 1000_000)
    c.set("k3", "v3", px=500_000); m.set("k3", b"v3", t + 500_000)
    c.set("k4", "v4", exat=t // 1000 + 2000); m.set("k4", b"v4", (t // 1000 + 2000) * 1000)
    c.set("k5", "v5", pxat=t + 900_000); m.set("k5", b"v5", t + 900_000)
    c.set("k2", "v2b", keepttl=True); m.set("k2", b"v2b", keepttl=True)
    assert c.set("k1", "nope", nx=True) is None
    assert c.set("k1", "v1x", xx=True) is True; m.set("k1", b"v1x")
    assert c.set("k6", "v6", get=True) is None; m.set("k6", b"v6")
    assert c.set("k5", "v5b", get=True, xx=True) == b"v5"; m.set("k5", b"v5b")
    assert c.setnx("k7", "v7") is True; m.set("k7", b"v7")
    assert c.setnx("k7", "zz") is False
    c.setex("k8", 1000, "v8"); m.set("k8", b"v8", t + 1000_000)
    c.psetex("k9", 900_000, "v9"); m.set("k9", b"v9", t + 900_000)
    assert c.getset("k8", "v8b") == b"v8"; m.set("k8", b"v8b")  # GETSET clears the TTL
    assert c.getdel("k6") == b"v6"; m.delete("k6")
    assert c.getex("k3", persist=True) == b"v3"; m.set("k3", b"v3")
    assert c.getex("k7", ex=2000) == b"v7"; m.set("k7", b"v7", t + 2000_000)
    assert c.getex("k1", pxat=t + 700_000) == b"v1x"; m.set("k1", b"v1x", t + 700_000)
    assert c.getex("k9", pxat=1) == b"v9"; m.delete("k9")  # a time in the past deletes
    c.mset({"m1": "a", "m2": "b"}); m.set("m1", b"a"); m.set("m2", b"b")
    assert c.msetnx({"m3": "c", "m4": "d"}) is True; m.set("m3", b"c"); m.set("m4", b"d")
    assert c.msetnx({"m3": "x", "m5": "y"}) is False
    assert c.append("a1", "hello") == 5
    assert c.append("a1", " world") == 11; m.set("a1", b"hello world")
    assert c.incr("c1") == 1
    assert c.incrby("c1", 10) == 11
    assert c.decr("c1") == 10
    assert c.decrby("c1", 3) == 7; m.set("c1", b"7")
    assert c.incrbyfloat("f1", 1.5) == 1.5
    assert c.incrbyfloat("f1", 0.25) == 1.75; m.set("f1", b"1.75")
    c.set("c2", "5", ex=1000); m.set("c2", b"5", t + 1000_000)
    assert c.incr("c2") == 6; m.set("c2", b"6", keepttl=True)
    assert c.incrbyfloat("c2", 0.5) == 6.5; m.set("c2", b"6.5", keepttl=True)
    assert c.setrange("sr", 5, "abc") == 8
    assert c.setrange("sr", 0, "XY") == 8; m.set("sr", b"XY\0\0\0abc")
    assert c.delete("m1", "nonexistent") == 1; m.delete("m1")
    assert c.unlink("m2") == 1; m.delete("m2")
    for i in range(1, 9):
        c.set(f"e{i}", f"ev{i}"); m.set(f"e{i}", f"ev{i}".encode())
    assert c.expire("e1", 1000) is True; m.set("e1", b"ev1", t + 1000_000)
    assert c.pexpire("e2", 900_000) is True; m.set("e2", b"ev2", t + 900_000)
    assert c.expireat("e3", t // 1000 + 3000) is True; m.set("e3", b"ev3", (t // 1000 + 3000) * 1000)
    assert c.pexpireat("e4", t + 800_000) is True; m.set("e4", b"ev4", t + 800_000)
    assert c.expire("e5", 1000, nx=True) is True; m.set("e5", b"ev5", t + 1000_000)
    assert c.expire("e5", 2000, nx=True) is False
    assert c.expire("e1", 5000, xx=True) is True; m.set("e1", b"ev1", t + 5000_000)
    assert c.expire("e6", 100, xx=True) is False
    assert c.expire("e1", 9000, gt=True) is True; m.set("e1", b"ev1", t + 9000_000)
    assert c.expire("e1", 10, gt=True) is False
    assert c.expire("e2", 10, lt=True) is True; m.set("e2", b"ev2", t + 10_000)
    assert c.expire("e7", -1) is True; m.delete("e7")          # past: deletes
    assert c.pexpireat("e8", 1) is True; m.delete("e8")
    assert c.persist("e3") is True; m.set("e3", b"ev3")
    assert c.persist("e3") is False
    c.set("r1", "rv1", ex=1500); m.set("r1", b"rv1", t + 1500_000)
    assert c.rename("r1", "r2") is True; m.d["r2"] = m.d.pop("r1")
    c.set("r3", "rv3"); m.set("r3", b"rv3")
    assert c.renamenx("r3", "r2") is False
    assert c.renamenx("r3", "r4") is True; m.d["r4"] = m.d.pop("r3")
    # binary-safe keys and values survive the log
    c.set(b"bin\r\n\x00key", b"\x00\xff\r\n$*"); m.set("bin\r\n\x00key", b"\x00\xff\r\n$*")


def restart_compare(workdir, srv, m, args, crash):
    c = srv.client()
    before = m.check(c)
    if crash:
        kill9(srv)
    else:
        srv.stop()
    srv2 = start(workdir, *args)
    c2 = srv2.client()
    after = m.check(c2)
    # absolute expiry times are logged, so they come back exactly
    assert after == before
    return srv2


# ---------------------------------------------------------------------------
# AOF replay

@pytest.mark.parametrize("fsync,crash", [("always", True), ("everysec", False), ("no", False)])
def test_aof_replays_every_write_command(tmp_path, fsync, crash):
    args = ("--appendonly", "yes", "--appendfsync", fsync)
    srv = start(tmp_path, *args)
    m = Model()
    run_every_write_command(srv.client(), m)
    srv2 = restart_compare(tmp_path, srv, m, args, crash)
    srv2.stop()


def test_aof_replay_after_rewrite_base_plus_incr(tmp_path):
    """Half the writes go into the rewritten base, half into the new incr
    file; a third restart replays the rewritten AOF again."""
    args = ("--appendonly", "yes", "--appendfsync", "always")
    srv = start(tmp_path, *args)
    c = srv.client()
    for i in range(200):
        c.set(f"pre{i}", i, px=(3_600_000 if i % 3 == 0 else None))
    c.delete("pre5")
    assert c.bgrewriteaof() is True
    wait_rewrite_done(c, 0)
    names = sorted(p.name for p in (tmp_path / "appendonlydir").iterdir())
    assert names == ["appendonly.aof.2.base.pier", "appendonly.aof.2.incr.aof",
                     "appendonly.aof.manifest"], names
    m = Model()
    m.d = {k.decode(): [v, None if e == -1 else e] for k, (v, e) in dump_state(c).items()}
    run_every_write_command(c, m, flush=False)
    srv = restart_compare(tmp_path, srv, m, args, crash=True)
    srv = restart_compare(tmp_path, srv, m, args, crash=False)
    srv.stop()


def test_bgrewriteaof_under_concurrent_writes_loses_nothing(tmp_path):
    args = ("--appendonly", "yes", "--appendfsync", "always")
    srv = start(tmp_path, *args)
    stop = threading.Event()
    acked = {}
    errors = []

    def writer(wid):
        c = redis.Redis(port=srv.port, socket_timeout=20)
        i = 0
        try:
            while not stop.is_set():
                key = f"w{wid}:{i}"
                c.set(key, i)
                acked[key] = str(i).encode()
                c.incr(f"counter{wid}")
                i += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    c = srv.client()
    try:
        for n in range(3):
            time.sleep(0.3)
            wait_for(lambda: c.bgrewriteaof(), timeout=10, msg="BGREWRITEAOF accepted")
            wait_rewrite_done(c, n)
    finally:
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    counters = {w: int(c.get(f"counter{w}")) for w in range(3)}
    assert len(acked) > 100
    kill9(srv)
    srv2 = start(tmp_path, *args)
    c2 = srv2.client()
    assert c2.dbsize() == len(acked) + 3
    pipe = c2.pipeline(transaction=False)
    keys = list(acked)
    for k in keys:
        pipe.get(k)
    for k, v in zip(keys, pipe.execute()):
        assert v == acked[k], k
    for w, n in counters.items():
        assert int(c2.get(f"counter{w}")) == n
    srv2.stop()


def test_expired_keys_are_logged_as_del(tmp_path):
    """A key removed by expiry must stay removed after replay, even if the
    replay happens before its time (a DEL is logged)."""
    args = ("--appendonly", "yes", "--appendfsync", "always")
    srv = start(tmp_path, *args)
    c = srv.client()
    c.set("short", "x", px=200)
    wait_for(lambda: c.get("short") is None, timeout=5)  # lazy expiry
    # A read's DEL is written by the next flush (at most a second later):
    # the absolute PXAT already keeps the key dead, the DEL keeps the order.
    wait_for(lambda: b"$3\r\nDEL\r\n$5\r\nshort\r\n" in
             b"".join(p.read_bytes() for p in incr_files(tmp_path)), timeout=5)
    kill9(srv)
    srv2 = start(tmp_path, *args)
    assert srv2.client().exists("short") == 0
    srv2.stop()


def test_truncated_tail_is_cut_with_warning(tmp_path):
    args = ("--appendonly", "yes", "--appendfsync", "always")
    srv = start(tmp_path, *args)
    c = srv.client()
    for i in range(50):
        c.set(f"k{i}", f"v{i}")
    srv.stop()
    incr = incr_files(tmp_path)[-1]
    good_size = incr.stat().st_size
    with open(incr, "ab") as f:
        f.write(b"*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$5\r\nhal")  # crash mid-write
    srv2 = start(tmp_path, *args)
    c2 = srv2.client()
    assert c2.dbsize() == 50 and c2.get("k49") == b"v49" and c2.get("z") is None
    log = srv2.stderr_path.read_text() + srv2.stdout_path.read_text()
    assert incr.name in log and f"offset {good_size}" in log, log
    assert incr.stat().st_size == good_size
    c2.set("after", "1")
    srv2.stop()
    srv3 = start(tmp_path, *args)
    assert srv3.client().get("after") == b"1"
    srv3.stop()


def test_mid_file_corruption_refuses_to_start(tmp_path):
    args = ("--appendonly", "yes")
    srv = start(tmp_path, *args)
    c = srv.client()
    for i in range(20):
        c.set(f"k{i}", f"v{i}")
    srv.stop()
    incr = incr_files(tmp_path)[-1]
    data = bytearray(incr.read_bytes())
    first = bytes(data).index(b"*3\r\n$3\r\nSET")
    second = bytes(data).index(b"*3\r\n$3\r\nSET", first + 1)
    data[second + 4] = ord("X")  # "$3" -> "X3" in the second command
    incr.write_bytes(bytes(data))
    rc, out = run_pier_expecting_failure(tmp_path, *args)
    assert rc == 1, out
    assert incr.name in out and f"offset {second}" in out, out


def test_corrupt_base_file_refuses_to_start(tmp_path):
    args, _ = aof_with_data(tmp_path)
    base = next((tmp_path / "appendonlydir").glob("*.base.pier"))
    data = bytearray(base.read_bytes())
    data[len(data) // 2] ^= 0xFF
    base.write_bytes(bytes(data))
    rc, out = run_pier_expecting_failure(tmp_path, *args)
    assert rc == 1, out
    assert base.name in out and "offset" in out and "checksum" in out, out


def test_corrupt_manifest_refuses_to_start(tmp_path):
    args = ("--appendonly", "yes")
    start(tmp_path, *args).stop()
    man = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    man.write_text(man.read_text().replace("seq 1 type i", "seq 7 type i"))
    rc, out = run_pier_expecting_failure(tmp_path, *args)
    assert rc == 1 and "manifest" in out, out


# ---------------------------------------------------------------------------
# a missing or damaged manifest (issue 12 item 6): a correct load, or a
# refusal that names the files and leaves every file as it was

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def manifest_text(files):
    """A valid manifest listing (name, seq, type) in order."""
    body = "pier-aof-manifest 1\n" + "".join(f"file {n} seq {s} type {t}\n" for n, s, t in files)
    return body + "crc %08x\n" % crc32c(body.encode())


def aof_with_data(workdir, prefix="appendonly.aof"):
    """An AOF whose base and incr file both hold data, the incr file with
    INCRs (replayed twice they would be wrong). Returns (args, state)."""
    args = ("--appendonly", "yes", "--appendfilename", prefix)
    srv = start(workdir, *args)
    c = srv.client()
    for i in range(100):
        c.set(f"a{i}", f"v{i}")
    assert c.bgrewriteaof() is True
    wait_rewrite_done(c, 0)
    for i in range(100):
        c.set(f"b{i}", f"w{i}")
        c.incr("counter")
    state = dump_state(c)
    srv.stop()
    return args, state


def digests(workdir):
    d = Path(workdir) / "appendonlydir"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()}


def refuses_and_touches_nothing(workdir, args, *must_name):
    before = digests(workdir)
    rc, out = run_pier_expecting_failure(workdir, *args, timeout=10)
    assert rc == 1, out
    for name in must_name:
        assert name in out, (name, out)
    assert digests(workdir) == before, "a refused start changed the AOF files"
    return out


def loads_everything(workdir, args, state):
    srv = start(workdir, *args)
    assert dump_state(srv.client()) == state
    srv.stop()


def test_missing_manifest_refuses_and_names_the_files(tmp_path):
    args, state = aof_with_data(tmp_path)
    man = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    saved = man.read_bytes()
    man.unlink()
    out = refuses_and_touches_nothing(tmp_path, args, "appendonly.aof.manifest is missing",
                                      "appendonly.aof.2.base.pier", "appendonly.aof.2.incr.aof")
    man.write_bytes(saved)
    loads_everything(tmp_path, args, state)


def test_renamed_manifest_refuses(tmp_path):
    args, state = aof_with_data(tmp_path)
    man = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    man.rename(man.with_name("manifest.bak"))
    refuses_and_touches_nothing(tmp_path, args, "appendonly.aof.2.incr.aof")
    man.with_name("manifest.bak").rename(man)
    loads_everything(tmp_path, args, state)


def test_changed_appendfilename_refuses_to_hide_the_old_aof(tmp_path):
    """Another prefix: its manifest is missing, the old files are there."""
    args, state = aof_with_data(tmp_path, prefix="old.aof")
    refuses_and_touches_nothing(tmp_path, ("--appendonly", "yes"), "old.aof.manifest",
                                "old.aof.2.incr.aof")
    loads_everything(tmp_path, args, state)


def test_single_file_aof_of_old_redis_is_not_ignored(tmp_path):
    (tmp_path / "appendonly.aof").write_bytes(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
    rc, out = run_pier_expecting_failure(tmp_path, "--appendonly", "yes", timeout=10)
    assert rc == 1 and "single-file AOF" in out, out
    assert (tmp_path / "appendonly.aof").read_bytes().startswith(b"*3")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "missing_incr",
                                    "missing_base", "extra_line"])
def test_damaged_manifest_refuses_and_touches_nothing(tmp_path, damage):
    args, state = aof_with_data(tmp_path)
    man = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    saved = man.read_bytes()
    base, incr = ("appendonly.aof.2.base.pier", 2, "b"), ("appendonly.aof.2.incr.aof", 2, "i")
    if damage == "garbage":
        man.write_bytes(bytes(range(256)) * 4)
    elif damage == "truncated":
        man.write_bytes(saved[:len(saved) // 2])
    elif damage == "empty":
        man.write_bytes(b"")
    elif damage == "missing_incr":
        man.write_text(manifest_text([base, ("appendonly.aof.9.incr.aof", 9, "i")]))
    elif damage == "missing_base":
        man.write_text(manifest_text([("appendonly.aof.9.base.pier", 9, "b"), incr]))
    else:
        man.write_bytes(saved + b"file x seq 1 type i\n")
    out = refuses_and_touches_nothing(tmp_path, args, "manifest" if "missing" not in damage
                                      else ".9.")
    assert "appendonlydir" in out, out
    man.write_bytes(saved)
    loads_everything(tmp_path, args, state)


# ---------------------------------------------------------------------------
# snapshots

def test_save_bgsave_lastsave_and_restart_from_snapshot(tmp_path):
    args = ("--save", "3600 1")
    srv = start(tmp_path, *args)
    c = srv.client()
    m = Model()
    run_every_write_command(c, m)
    first = c.lastsave()
    assert isinstance(first, type(c.lastsave()))
    assert info_persistence(c)["rdb_changes_since_last_save"] > 0
    assert rawcmd(c, "BGSAVE") == b"Background saving started"
    wait_for(lambda: info_persistence(c)["rdb_bgsave_in_progress"] == 0
             and info_persistence(c)["rdb_saves"] == 1, timeout=20)
    assert info_persistence(c)["rdb_last_bgsave_status"] == "ok"
    assert (tmp_path / "dump.pier").exists()
    assert c.lastsave() >= first
    assert info_persistence(c)["rdb_changes_since_last_save"] == 0
    c.set("more", "1"); m.set("more", b"1")
    assert c.save() is True
    state = m.check(c)
    c.set("lost", "x")  # after the last save: gone after a crash
    kill9(srv)
    srv2 = start(tmp_path, *args)
    c2 = srv2.client()
    assert m.check(c2) == state
    srv2.stop()


def test_bgsave_while_one_runs_and_schedule(tmp_path):
    srv = start(tmp_path, "--save", "")
    c = srv.client()
    # enough data that the child takes a moment
    pipe = c.pipeline(transaction=False)
    for i in range(50_000):
        pipe.set(f"key:{i}", "x" * 100)
    pipe.execute()
    assert rawcmd(c, "BGSAVE") == b"Background saving started"
    try:
        r = rawcmd(c, "BGSAVE")
    except redis.ResponseError as e:
        assert "Background save already in progress" in str(e)
    else:  # the first child was already done
        assert r == b"Background saving started"
    wait_for(lambda: info_persistence(c)["rdb_bgsave_in_progress"] == 0, timeout=30)
    with pytest.raises(redis.ResponseError, match="syntax error"):
        c.execute_command("BGSAVE", "NOW")
    srv.stop()


def test_shutdown_saves_snapshot_when_save_rules_set(tmp_path):
    srv = start(tmp_path, "--save", "3600 1")
    srv.client().set("k", "v")
    srv.stop()  # SIGTERM: final save
    assert (tmp_path / "dump.pier").exists()
    srv2 = start(tmp_path, "--save", "")
    assert srv2.client().get("k") == b"v"
    srv2.stop()


def shutdown(srv, *args):
    """SHUTDOWN: no reply, the connection closes and the server exits 0."""
    c = srv.client()
    with pytest.raises(redis.ConnectionError):
        c.execute_command("SHUTDOWN", *args)
    assert srv.proc.wait(timeout=30) == 0, srv.logs()
    srv.stop()


def test_shutdown_arguments_as_redis(tmp_path):
    srv = start(tmp_path)
    c = srv.client()
    for args in (("SAVE", "NOSAVE"), ("ABORT", "NOW"), ("ABORT", "FORCE"), ("NOSAVE", "ABORT"),
                 ("FOO",), ("NOW", "BAR")):
        with pytest.raises(redis.ResponseError, match="^syntax error$"):
            c.execute_command("SHUTDOWN", *args)
    with pytest.raises(redis.ResponseError, match="^No shutdown in progress.$"):
        c.execute_command("SHUTDOWN", "ABORT")
    assert c.ping() is True
    shutdown(srv, "now", "now")  # repeated flags are fine, as in Redis


def test_shutdown_nosave_skips_the_final_snapshot(tmp_path):
    srv = start(tmp_path, "--save", "3600 1")
    srv.client().set("k", "v")
    shutdown(srv, "NOSAVE")
    assert not (tmp_path / "dump.pier").exists()


def test_shutdown_save_without_save_rules(tmp_path):
    srv = start(tmp_path, "--save", "")
    srv.client().set("k", "v")
    shutdown(srv, "SAVE", "NOW", "FORCE")
    srv2 = start(tmp_path, "--save", "")
    assert srv2.client().get("k") == b"v"
    srv2.stop()


def test_shutdown_without_arguments_follows_the_save_rules(tmp_path):
    srv = start(tmp_path, "--save", "3600 1")
    srv.client().set("k", "v")
    shutdown(srv)
    srv2 = start(tmp_path, "--save", "")
    assert srv2.client().get("k") == b"v"
    srv2.stop()


@pytest.mark.parametrize("fsync", ["no", "everysec"])
def test_shutdown_flushes_the_aof(tmp_path, fsync):
    args = ("--appendonly", "yes", "--appendfsync", fsync)
    srv = start(tmp_path, *args)
    c = srv.client()
    for i in range(1000):
        c.set(f"k{i}", i)
    shutdown(srv)
    srv2 = start(tmp_path, *args)
    assert srv2.client().dbsize() == 1000
    srv2.stop()


def test_stop_writes_on_bgsave_error_option(tmp_path):
    srv = start(tmp_path)
    c = srv.client()
    assert c.config_get("stop-writes-on-bgsave-error") == {"stop-writes-on-bgsave-error": "yes"}
    assert c.config_set("stop-writes-on-bgsave-error", "no") is True
    assert c.config_get("stop-writes-on-bgsave-error") == {"stop-writes-on-bgsave-error": "no"}
    with pytest.raises(redis.ResponseError):
        c.config_set("stop-writes-on-bgsave-error", "maybe")
    srv.stop()
    srv = start(tmp_path, "--stop-writes-on-bgsave-error", "no")
    assert srv.client().config_get("stop-writes-on-bgsave-error") == \
        {"stop-writes-on-bgsave-error": "no"}
    srv.stop()


def test_save_rule_triggers_background_save(tmp_path):
    srv = start(tmp_path, "--save", "1 2")
    c = srv.client()
    c.set("a", 1)
    c.set("b", 2)
    wait_for(lambda: info_persistence(c)["rdb_saves"] >= 1, timeout=10, msg="automatic save")
    assert (tmp_path / "dump.pier").exists()
    srv.stop()


def test_corrupt_snapshot_refuses_to_start(tmp_path):
    srv = start(tmp_path, "--save", "3600 1")
    srv.client().mset({f"k{i}": i for i in range(100)})
    srv.stop()
    dump = tmp_path / "dump.pier"
    data = bytearray(dump.read_bytes())
    data[40] ^= 0x01
    dump.write_bytes(bytes(data))
    rc, out = run_pier_expecting_failure(tmp_path)
    assert rc == 1, out
    assert "dump.pier" in out and "offset" in out, out


def test_appendonly_start_imports_existing_snapshot(tmp_path):
    srv = start(tmp_path, "--save", "3600 1")
    srv.client().set("from-snapshot", "1")
    srv.stop()
    srv2 = start(tmp_path, "--appendonly", "yes")
    c = srv2.client()
    assert c.get("from-snapshot") == b"1"
    c.set("from-aof", "2")
    srv2.stop()
    (tmp_path / "dump.pier").unlink()
    srv3 = start(tmp_path, "--appendonly", "yes")
    c3 = srv3.client()
    assert c3.get("from-snapshot") == b"1" and c3.get("from-aof") == b"2"
    srv3.stop()


# ---------------------------------------------------------------------------
# expiry across restarts

@pytest.mark.parametrize("mode", ["aof", "snapshot"])
def test_expiry_survives_restart(tmp_path, mode):
    args = ("--appendonly", "yes") if mode == "aof" else ("--save", "3600 1")
    srv = start(tmp_path, *args)
    c = srv.client()
    c.set("long", "v", ex=1000)
    c.set("soon", "v", px=1500)
    c.set("gone", "v", px=300)
    c.set("plain", "v")
    long_at = c.pexpiretime("long")
    srv.stop()
    time.sleep(0.4)  # "gone" expires while the server is down
    srv2 = start(tmp_path, *args)
    c2 = srv2.client()
    assert c2.pexpiretime("long") == long_at
    assert c2.exists("gone") == 0
    assert c2.ttl("plain") == -1
    assert c2.exists("soon") == 1
    wait_for(lambda: c2.exists("soon") == 0, timeout=5, msg="'soon' to expire after restart")
    srv2.stop()


# ---------------------------------------------------------------------------
# options and INFO

def test_persistence_options_config_get_set(tmp_path):
    srv = start(tmp_path)
    c = srv.client()
    cfg = c.config_get("*")
    assert cfg["appendonly"] == "no"
    assert cfg["appendfsync"] == "everysec"
    assert cfg["appendfilename"] == "appendonly.aof"
    assert cfg["appenddirname"] == "appendonlydir"
    assert cfg["dbfilename"] == "dump.pier"
    assert cfg["dir"] == "."
    assert cfg["auto-aof-rewrite-percentage"] == "100"
    assert cfg["auto-aof-rewrite-min-size"] == str(64 * 1024 * 1024)
    assert cfg["save"] == ""  # the fixture turns the default rules off
    assert c.config_set("appendfsync", "always") is True
    assert c.config_get("appendfsync")["appendfsync"] == "always"
    with pytest.raises(redis.ResponseError):
        c.config_set("appendfsync", "sometimes")
    assert c.config_set("save", "900 1 300 10") is True
    assert c.config_get("save")["save"] == "900 1 300 10"
    with pytest.raises(redis.ResponseError):
        c.config_set("save", "900")
    assert c.config_set("save", "") is True
    assert c.config_set("auto-aof-rewrite-min-size", "1mb") is True
    assert c.config_get("auto-aof-rewrite-min-size")["auto-aof-rewrite-min-size"] == "1048576"
    srv.stop()


def test_default_save_rules(tmp_path):
    srv = server_on(tmp_path)
    srv.argv = lambda: [PIER_BIN, "--port", str(srv.port), "--bind", "127.0.0.1"]
    srv.start()
    assert srv.client().config_get("save")["save"] == "3600 1 300 100 60 10000"
    srv.stop()


@pytest.mark.parametrize("flag,value", [("--appendfsync", "sometimes"), ("--appendonly", "maybe"),
                                        ("--save", "10"), ("--auto-aof-rewrite-percentage", "x")])
def test_bad_persistence_option_exits_2(tmp_path, flag, value):
    rc, out = run_pier_expecting_failure(tmp_path, flag, value)
    assert rc == 2, out
    assert flag[2:] in out, out


def test_info_persistence_fields(tmp_path):
    srv = start(tmp_path, "--appendonly", "yes")
    c = srv.client()
    info = info_persistence(c)
    for field in ("aof_enabled", "aof_rewrite_in_progress", "rdb_bgsave_in_progress",
                  "rdb_changes_since_last_save", "rdb_last_save_time", "aof_last_write_status",
                  "aof_current_size", "aof_base_size", "loading"):
        assert field in info, field
    assert info["aof_enabled"] == 1 and info["aof_last_write_status"] == "ok"
    c.set("x", "y")
    assert info_persistence(c)["rdb_changes_since_last_save"] >= 1
    wait_for(lambda: info_persistence(c)["aof_current_size"] > info["aof_current_size"],
             timeout=5)
    srv.stop()


def test_automatic_rewrite_on_growth(tmp_path):
    srv = start(tmp_path, "--appendonly", "yes", "--auto-aof-rewrite-min-size", "64kb",
                "--auto-aof-rewrite-percentage", "100")
    c = srv.client()
    pipe = c.pipeline(transaction=False)
    for i in range(3000):
        pipe.set("same-key", "x" * 50)  # grows the log, not the dataset
    pipe.execute()
    wait_for(lambda: info_persistence(c)["aof_rewrites"] >= 1, timeout=15, msg="auto rewrite")
    wait_for(lambda: info_persistence(c)["aof_current_size"] < 64 * 1024, timeout=5)
    srv.stop()
    srv2 = start(tmp_path, "--appendonly", "yes")
    assert srv2.client().get("same-key") == b"x" * 50
    srv2.stop()


def test_save_lines_in_config_file_accumulate(tmp_path):
    """redis.conf style: the first `save` line replaces the defaults, later
    lines add rules; `save ""` clears them."""
    conf = tmp_path / "pier.conf"
    conf.write_text('save 900 1\nsave 300 10\n')
    srv = server_on(tmp_path)
    srv.argv = lambda: [PIER_BIN, str(conf), "--port", str(srv.port), "--bind", "127.0.0.1"]
    srv.start()
    assert srv.client().config_get("save")["save"] == "900 1 300 10"
    srv.stop()
    conf.write_text('save 900 1\nsave ""\n')
    srv2 = server_on(tmp_path)
    srv2.argv = lambda: [PIER_BIN, str(conf), "--port", str(srv2.port), "--bind", "127.0.0.1"]
    srv2.start()
    assert srv2.client().config_get("save")["save"] == ""
    srv2.stop()
