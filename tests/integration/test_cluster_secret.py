"""The cluster bus secret (issue 12): cluster-secret / cluster-secret-file
are required unless every member is on loopback, never shown, never in
the command line or the log, and checked at start-up."""
import os
import subprocess

import pytest

from conftest import IS_REDIS, PIER_BIN, Server, free_port

pytestmark = pytest.mark.skipif(IS_REDIS, reason="pier cluster mode is pier's own")

SECRET = "a-cluster-secret-of-32-bytes-xyz"


def one_node(tmp_path, *extra):
    port = free_port()
    d = tmp_path / "n1"
    d.mkdir(exist_ok=True)
    return Server("pier", d, ["--dir", str(d), "--cluster-node-id", "1",
                              "--cluster-nodes", f"1@127.0.0.1:{port}@{free_port()}", *extra],
                  port=port)


def run_pier(*args):
    return subprocess.run([PIER_BIN, *args], capture_output=True, timeout=30)


def test_secret_is_never_shown(tmp_path):
    s = one_node(tmp_path, "--cluster-secret", SECRET, "--loglevel", "verbose").start()
    try:
        r = s.client()
        assert r.config_get("cluster-secret") == {"cluster-secret": "<redacted>"}
        assert r.config_get("cluster-secret-file") == {"cluster-secret-file": ""}
        everything = "".join(k + v for k, v in r.config_get("*").items())
        assert SECRET not in everything
        assert SECRET.encode() not in r.execute_command("INFO", "everything")
        with pytest.raises(Exception, match="immutable"):
            r.config_set("cluster-secret", "x" * 32)
        with open(f"/proc/{s.proc.pid}/cmdline", "rb") as f:
            assert SECRET.encode() not in f.read()
    finally:
        s.stop()
    assert SECRET.encode() not in s.stdout_path.read_bytes() + s.stderr_path.read_bytes()


def test_secret_file(tmp_path):
    key = tmp_path / "cluster.key"
    key.write_text(SECRET + "\n")
    key.chmod(0o600)
    s = one_node(tmp_path, "--cluster-secret-file", str(key)).start()
    try:
        r = s.client()
        assert r.config_get("cluster-secret-file") == {"cluster-secret-file": str(key)}
        assert r.config_get("cluster-secret") == {"cluster-secret": ""}
        assert r.set("k", "v") is True
    finally:
        s.stop()
    log = s.stdout_path.read_bytes() + s.stderr_path.read_bytes()
    assert SECRET.encode() not in log and b"no cluster-secret" not in log


def test_secret_file_readable_by_others_is_warned(tmp_path):
    key = tmp_path / "cluster.key"
    key.write_text(SECRET)
    key.chmod(0o644)
    s = one_node(tmp_path, "--cluster-secret-file", str(key)).start()
    s.stop()
    assert b"can be read by other users" in s.stderr_path.read_bytes()


def test_loopback_cluster_without_secret_warns(tmp_path):
    s = one_node(tmp_path).start()
    try:
        assert s.client().set("k", "v") is True
    finally:
        s.stop()
    assert b"no cluster-secret: any local process can join" in s.stderr_path.read_bytes()


def test_start_up_refusals(tmp_path):
    port = free_port()
    base = ["--port", str(port), "--dir", str(tmp_path), "--cluster-node-id", "1"]
    remote = ["--cluster-nodes", f"1@10.99.0.1:{port}@{free_port()}"]
    local = ["--cluster-nodes", f"1@127.0.0.1:{port}@{free_port()}"]
    key = tmp_path / "k"
    key.write_text(SECRET)
    key.chmod(0o600)
    cases = [
        (base + remote, b"needs cluster-secret-file"),
        (base + local + ["--cluster-secret", "short"], b"at least 16"),
        (base + local + ["--cluster-secret", SECRET, "--cluster-secret-file", str(key)],
         b"not both"),
        (base + local + ["--cluster-secret-file", str(tmp_path / "missing")],
         b"No such file"),
        (base + local + ["--cluster-secret-file", str(tmp_path)], b"not a regular file"),
    ]
    for args, want in cases:
        p = run_pier(*args)
        assert p.returncode != 0, args
        assert want in p.stderr, (args, p.stderr)
        assert SECRET.encode() not in p.stdout + p.stderr
    # a bad value of the option itself is not echoed either
    p = run_pier("--port", "0", "--cluster-secret", "S" * 600)
    assert p.returncode == 2 and b"S" * 100 not in p.stderr and b"cluster-secret" in p.stderr


# ---------------------------------------------------------------------------
# the restart hand-over (server/restart.c): a node restarting itself passes
# its whole configuration on an inherited fd, not on its command line


def _dump(records):
    """config_dump's format: u32 name length, name, u32 value length, value."""
    out = b""
    for name, value in records:
        name, value = name.encode(), value.encode() if isinstance(value, str) else value
        out += len(name).to_bytes(4, "little") + name + len(value).to_bytes(4, "little") + value
    return out


def _start_with_fd(tmp_path, data, *junk):
    fd = os.memfd_create("handover")
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        return subprocess.Popen([PIER_BIN, *junk, "--restart-fd", str(fd)], pass_fds=(fd,),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=str(tmp_path)), fd
    finally:
        os.close(fd)


def test_restart_handover(tmp_path):
    import redis
    from conftest import wait_for
    port = free_port()
    data = _dump([("port", str(port)), ("bind", "127.0.0.1"), ("save", ""),
                  ("requirepass", SECRET), ("maxmemory-policy", "allkeys-lfu"),
                  ("rename-command", "FLUSHALL "), ("dir", str(tmp_path))])
    # the rest of the command line is ignored: the hand-over is the configuration
    p, fd = _start_with_fd(tmp_path, data, "--port", "1", "--requirepass", "not-this-one")
    try:
        r = redis.Redis(port=port, password=SECRET, socket_timeout=5)
        wait_for(lambda: r.ping(), timeout=10, msg="the server handed its configuration")
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}
        with pytest.raises(redis.ResponseError, match="unknown command"):
            r.execute_command("FLUSHALL")
        with pytest.raises(redis.ResponseError, match="WRONGPASS"):
            redis.Redis(port=port, password="not-this-one").ping()
        assert not os.path.exists(f"/proc/{p.pid}/fd/{fd}")  # read and closed at once
    finally:
        p.terminate()
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert SECRET.encode() not in out + err


def test_restart_handover_damaged(tmp_path):
    good = _dump([("port", "0"), ("requirepass", SECRET)])
    for data, want in ((good[:-1], b"damaged record"), (_dump([("port", "x")]), b"'port'"),
                       (_dump([("no-such-option", "1")]), b"unknown option")):
        p, _ = _start_with_fd(tmp_path, data)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 2 and want in err, err
        assert SECRET.encode() not in out + err
    p = subprocess.run([PIER_BIN, "--restart-fd", "nope"], capture_output=True, timeout=20)
    assert p.returncode == 2 and b"--restart-fd needs a file descriptor" in p.stderr


def test_cluster_node_hangs_up_on_http(tmp_path):
    """Cross-protocol scripting against a cluster node: same as a plain
    node (the routing to the cluster thread never sees the request)."""
    import socket
    s = one_node(tmp_path, "--cluster-secret", SECRET).start()
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n"  # in flight when POST arrives
                      b"POST / HTTP/1.1\r\nHost: x\r\n\r\nSET xproto_pwned 1\r\n")
            data = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        assert data == b""
        assert s.client().exists("xproto_pwned") == 0
    finally:
        s.stop()
