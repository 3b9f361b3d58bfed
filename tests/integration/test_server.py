"""Server process behaviour: flags, clean SIGTERM shutdown, concurrency."""
import subprocess
import threading
import time

import pytest

from conftest import IS_REDIS, Server, assert_server_alive, pier_only, rawcmd, require_binary


def test_sigterm_with_busy_clients_exits_cleanly(start_server):
    srv = start_server()
    c = srv.client()
    c.set("big", b"x" * (4 * 1024 * 1024))
    idle = srv.raw()
    idle.cmd("PING")
    partial = srv.raw()
    partial.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc")  # mid-bulk
    reader = srv.raw()
    reader.send(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 20)  # replies not read
    time.sleep(0.1)
    srv.stop()  # SIGTERM; for pier: exit 0 and no sanitizer report
    assert srv.returncode == 0, srv.logs()


def test_maxclients_flag(start_server):
    srv = start_server("--maxclients", "7")
    c = srv.client()
    assert rawcmd(c, "CONFIG", "GET", "maxclients") == [b"maxclients", b"7"]


def test_unknown_flag_fails_with_message(tmp_path):
    binary = require_binary("redis" if IS_REDIS else "pier")
    p = subprocess.run([binary, "--port", "0", "--no-such-option-xyz", "1"], capture_output=True,
                       timeout=10, cwd=tmp_path)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "no-such-option-xyz" in out, out
    for m in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert m not in out


def test_port_in_use_fails(start_server, tmp_path):
    srv = start_server()
    kind = "redis" if IS_REDIS else "pier"
    other = Server(kind, tmp_path / "dup", port=srv.port)
    p = subprocess.run(other.argv(), capture_output=True, timeout=15, cwd=tmp_path)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert_server_alive(srv, "after a second server failed to bind its port")


def test_concurrent_clients_consistency(start_server):
    srv = start_server() if IS_REDIS else start_server("--threads", "4")
    n_threads, n_ops = 8, 400
    errors = []

    def worker(t):
        try:
            c = srv.client()
            for i in range(n_ops):
                c.incr("shared")
                key = "own:%d" % t
                c.set(key, i)
                assert c.get(key) == b"%d" % i
                if i % 50 == 0:
                    c.mset({"m:%d:%d" % (t, j): j for j in range(20)})
                    assert c.mget(["m:%d:%d" % (t, j) for j in range(20)]) == [b"%d" % j for j in range(20)]
                    c.expire("m:%d:0" % t, 1000)
                    c.rename("m:%d:1" % t, "r:%d" % t)
            c.close()
        except Exception as e:  # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    assert not errors, errors[:3]
    c = srv.client()
    assert c.get("shared") == b"%d" % (n_threads * n_ops)
    assert c.dbsize() == 1 + n_threads + n_threads * 20


def test_many_connections(start_server):
    srv = start_server()
    conns = [srv.raw() for _ in range(200)]
    for i, c in enumerate(conns):
        c.send(b"SET c%d %d\r\n" % (i, i))
    for c in conns:
        assert c.read_reply_raw() == b"+OK\r\n"
    c0 = srv.client()
    assert c0.info("clients")["connected_clients"] >= 201
    for c in conns:
        c.close()
    assert c0.dbsize() == 200


@pier_only
def test_threads_flag_and_parallel_pipelines(start_server):
    srv = start_server("--threads", "2")
    errors = []

    def worker(t):
        try:
            c = srv.raw()
            c.send(b"".join(b"INCR ctr\r\nSET t%d:%d v\r\n" % (t, i) for i in range(2000)))
            for i in range(2000):
                rep = c.read_reply_raw()
                assert rep.startswith(b":"), rep
                assert c.read_reply_raw() == b"+OK\r\n"
        except Exception as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    assert not errors, errors[:3]
    c = srv.client()
    assert c.get("ctr") == b"12000"
    assert c.dbsize() == 12001


@pier_only
def test_loglevel_silent_prints_nothing(start_server):
    srv = start_server("--loglevel", "silent")
    srv.client().set("a", "b")
    srv.stop()
    assert srv.stdout_path.read_bytes() == b"", srv.logs()
    assert srv.stderr_path.read_bytes() == b"", srv.logs()
