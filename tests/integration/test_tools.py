"""The stock Redis tools work against the server: redis-cli, redis-benchmark."""
import shutil
import subprocess

import pytest

CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
BENCH = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"


def run(argv, stdin=None, timeout=60):
    for exe in (argv[0],):
        if not shutil.which(exe):
            pytest.fail(f"{exe} not found (install redis-tools)", pytrace=False)
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)


def cli(server, *args, stdin=None):
    return run([CLI, "-h", "127.0.0.1", "-p", str(server.port), *args], stdin=stdin)


def test_redis_cli_set_get(server):
    p = cli(server, "set", "a", "b")
    assert p.returncode == 0 and p.stdout == b"OK\n", p
    p = cli(server, "get", "a")
    assert p.returncode == 0 and p.stdout == b"b\n", p
    p = cli(server, "--no-raw", "get", "a")
    assert p.stdout == b'"b"\n', p
    p = cli(server, "--no-raw", "get", "nokey")
    assert p.stdout == b"(nil)\n", p
    p = cli(server, "--no-raw", "incr", "n")
    assert p.stdout == b"(integer) 1\n", p
    p = cli(server, "--no-raw", "mget", "a", "nokey")
    assert p.stdout == b'1) "b"\n2) (nil)\n', p
    p = cli(server, "--no-raw", "get")
    assert p.stdout == b"(error) ERR wrong number of arguments for 'get' command\n", p
    p = cli(server, "del", "a", "n")
    assert p.stdout == b"2\n", p


def test_redis_cli_ping_and_resp3(server):
    assert cli(server, "ping").stdout == b"PONG\n"
    p = cli(server, "-3", "--no-raw", "get", "nokey")
    assert p.returncode == 0 and p.stdout == b"(nil)\n", p


def test_redis_cli_stdin_commands(server):
    p = cli(server, stdin=b"set x 1\nincr x\nget x\nset q \"a b\"\nget q\ndel x q\n")
    assert p.returncode == 0, p
    assert p.stdout == b"OK\n2\n2\nOK\na b\n2\n", p


def test_redis_cli_pipe_mode(server):
    data = b"".join(b"SET pipe:%d %d\r\n" % (i, i) for i in range(1000))
    p = cli(server, "--pipe", stdin=data)
    assert p.returncode == 0, p
    assert b"errors: 0, replies: 1000" in p.stdout, p.stdout
    assert cli(server, "get", "pipe:999").stdout == b"999\n"
    assert cli(server, "dbsize").stdout.strip().isdigit()


def test_redis_cli_unknown_command(server):
    p = cli(server, "nosuch", "a")
    assert p.stdout.startswith(b"ERR unknown command 'nosuch', with args beginning with: 'a'"), p


def test_redis_cli_scan_and_info(server):
    cli(server, "mset", "s1", "1", "s2", "2")
    p = cli(server, "--scan", "--pattern", "s*")
    assert sorted(p.stdout.split()) == [b"s1", b"s2"], p
    p = cli(server, "info", "server")
    assert b"redis_version:" in p.stdout


def test_redis_benchmark(server):
    p = run([BENCH, "-h", "127.0.0.1", "-p", str(server.port), "-t", "set,get", "-n", "20000", "-q"],
            timeout=90)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0, out
    lines = [l.split("\r")[-1].strip() for l in out.splitlines()]
    assert any(l.startswith("SET: ") and "requests per second" in l for l in lines), out
    assert any(l.startswith("GET: ") and "requests per second" in l for l in lines), out
    low = out.lower()
    for bad in ("error", "err ", "unknown", "connection reset", "refused"):
        assert bad not in low, out


def test_redis_benchmark_pipelined(server):
    p = run([BENCH, "-h", "127.0.0.1", "-p", str(server.port), "-t", "set,get", "-n", "20000",
             "-P", "16", "-c", "8", "-q"], timeout=90)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert "error" not in out.lower(), out
    assert "GET: " in out and "SET: " in out
