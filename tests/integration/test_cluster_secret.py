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
    remote = ["--cluster-nodes", f"1@10.99.0.1:{port}"]
    local = ["--cluster-nodes", f"1@127.0.0.1:{port}"]
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
