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


# ---------------------------------------------------------------- pier-bench

import csv
import io
import json
import os

from conftest import IS_REDIS, REPO, free_port

PIER_BENCH = REPO / "build" / "pier-bench"


def bench(*args, timeout=120):
    if not PIER_BENCH.exists():
        pytest.fail(f"{PIER_BENCH} missing: build it with `make build/pier-bench`", pytrace=False)
    return subprocess.run([str(PIER_BENCH), *map(str, args)], capture_output=True,
                          timeout=timeout)


def bench_ok(*args, timeout=120):
    p = bench(*args, timeout=timeout)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")
    return p.stdout.decode()


def test_pier_bench_help():
    """Regression (issue 11): --help exited 2 and listed a mode that does
    not exist ("modes to come: dispatch")."""
    p = bench("--help")
    assert p.returncode == 0, p
    out = p.stdout.decode()
    for mode in ("kv", "log", "cluster"):
        assert f"\n  {mode} " in out, out
    assert "dispatch" not in out and "to come" not in out
    for mode in ("kv", "log", "cluster"):
        p = bench(mode, "--help")
        assert p.returncode == 0 and b"usage: pier-bench " + mode.encode() in p.stdout, p
        for flag in (b"--json", b"--csv", b"--interval", b"-q"):
            assert flag in p.stdout, (mode, flag)
    p = bench()
    assert p.returncode == 2 and b"usage: pier-bench MODE" in p.stderr
    p = bench("dispatch")
    assert p.returncode == 2 and b"unknown mode 'dispatch'" in p.stderr


def test_pier_bench_removed_flag_meanings_are_explained():
    """-n is a request count and -c a client count in every mode; log used
    them for its node list and connections per node."""
    p = bench("log", "-n", "127.0.0.1:8379")
    assert p.returncode == 2
    assert b"-n is the number of messages" in p.stderr and b"--nodes 127.0.0.1:8379" in p.stderr
    p = bench("log", "-c", "4")
    assert p.returncode == 2 and b"--conns 4" in p.stderr, p.stderr
    for bad in (["kv", "-c", "x"], ["kv", "-d", "1.5k"], ["cluster", "--weak-ratio", "2"],
                ["log", "--total", "-1"], ["kv", "--json", "--csv"]):
        p = bench(*bad)
        assert p.returncode == 2 and p.stderr.startswith(b"pier-bench: "), (bad, p)


def test_pier_bench_sizes_parse_as_the_servers(server):
    """Sizes take the server's units: -d 1kb is 1024 bytes, -d 1k 1000."""
    r = server.client()
    for size, want in (("1kb", 1024), ("1k", 1000), ("2", 2)):
        bench_ok("kv", "-p", server.port, "-c", 1, "-n", 5, "-r", 1, "-d", size, "-q")
        assert r.strlen("key:000000000000") == want, size
    r.delete("key:000000000000")


def check_json_run(out, mode, params):
    j = json.loads(out)
    assert j["mode"] == mode
    for k, v in params.items():
        assert j["params"][k] == v, (k, j["params"])
    assert isinstance(j["series"], list)
    return j


def check_csv_run(out, mode):
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and rows[-1]["row"] == "total" and all(r["mode"] == mode for r in rows)
    header = out.splitlines()[0].split(",")
    assert len(header) == len(set(header)), "duplicate CSV columns"
    assert any(h.startswith("params.") for h in header)
    return rows


def test_pier_bench_kv_json_csv_interval(server):
    out = bench_ok("kv", "-p", server.port, "-c", 4, "-n", 3000, "-d", 8, "--json")
    j = check_json_run(out, "kv", {"clients": 4, "requests": 3000, "size": 8, "port": server.port})
    assert j["requests"] == 3000 and j["ops_per_sec"] > 0 and j["series"] == []
    out = bench_ok("kv", "-p", server.port, "-c", 4, "--duration", 0.6, "--interval", 0.2,
                   "--json")
    j = check_json_run(out, "kv", {"duration_s": 0.6})
    assert len(j["series"]) >= 2, j["series"]
    assert sum(s["requests"] for s in j["series"]) <= j["requests"]
    assert all("t_s" in s and "p99_us" in s for s in j["series"])
    rows = check_csv_run(bench_ok("kv", "-p", server.port, "-c", 4, "--duration", 0.6,
                                  "--interval", 0.2, "--csv"), "kv")
    assert len([r for r in rows if r["row"] == "interval"]) >= 2
    assert rows[-1]["params.clients"] == "4"
    out = bench_ok("kv", "-p", server.port, "-c", 2, "--duration", 0.5, "--interval", 0.2)
    assert sum(1 for l in out.splitlines() if l.startswith("[") and "ops_per_sec=" in l) >= 2, out


def test_pier_bench_cluster_json_csv_interval(server):
    """cluster mode against a single node (or redis: --no-consistency)."""
    extra = ["--no-consistency"] if IS_REDIS else []
    node = f"127.0.0.1:{server.port}"
    out = bench_ok("cluster", "--nodes", node, "-c", 2, "-n", 500, "--json", *extra)
    j = check_json_run(out, "cluster", {"clients": 2, "requests": 500, "nodes": node})
    assert j["ops"] + j["errors"] == 500 and "strong" in j and "weak" in j
    rows = check_csv_run(bench_ok("cluster", "--nodes", node, "-c", 2, "--duration", 0.5,
                                  "--interval", 0.2, "--csv", *extra), "cluster")
    assert len([r for r in rows if r["row"] == "interval"]) >= 2


pier_only = pytest.mark.skipif(IS_REDIS, reason="the batch port is pier's own")


@pytest.fixture
def batch_srv(start_server):
    bport = free_port()
    s = start_server("--batch-port", bport)
    s.bport = bport
    return s


def log_args(s, *extra):
    return ["log", "--nodes", f"127.0.0.1:{s.bport}", "--resp", f"127.0.0.1:{s.port}", *extra]


@pier_only
def test_pier_bench_log_json_csv_interval(batch_srv):
    out = bench_ok(*log_args(batch_srv, "-n", 2000, "-d", "1kb", "--json", "--topic", "lj"))
    j = check_json_run(out, "log", {"requests": 2000, "size": 1024, "log_mode": "publish"})
    assert j["messages"] == 2000 and j["mib_per_sec"] > 0 and j["connections"]
    rows = check_csv_run(bench_ok(*log_args(batch_srv, "--mode", "latency", "-n", 3000, "-d",
                                            64, "--rate", 5000, "--interval", 0.2, "--csv")),
                         "log")
    iv = [r for r in rows if r["row"] == "interval"]
    assert len(iv) >= 2 and sum(int(r["messages"]) for r in iv) == 3000
    assert rows[-1]["p99_us"] != ""


@pier_only
def test_pier_bench_log_verify_single_node(batch_srv):
    """--verify: a subscriber checks every message once, each thread's in
    order (one connection per publisher on a single node), and the
    per-node table's numbers reach the JSON."""
    out = bench_ok(*log_args(batch_srv, "-n", 3000, "-d", 64, "--threads", 2, "--publishers", 2,
                             "--order-level", 2, "--verify", "--json", "-q"))
    j = check_json_run(out, "log", {"publishers": 2, "order_level": 2, "verify": True})
    v = j["verify"]
    assert v["ok"] and v["order_checked"], v
    assert v["nodes"][0]["delivered"] == 3000 and v["nodes"][0]["missing"] == 0
    assert v["nodes"][0]["duplicates"] == 0 and v["nodes"][0]["out_of_order"] == 0
    assert j["cluster_nodes"] == 0
    assert j["nodes"][0]["connected"] == 2 and j["nodes"][0]["batches"] >= 2
    assert sum(c["acked_batches"] for c in j["connections"]) == j["nodes"][0]["batches"]


@pier_only
def test_pier_bench_log_cluster_options_on_a_single_node(batch_srv):
    """A single node refuses ack level 2 with its ERROR 8 text;
    --kill-leader-at needs a cluster; --verify needs room for its stamp."""
    p = bench(*log_args(batch_srv, "-n", 100, "--ack-level", 2, "-q"))
    assert p.returncode == 1 and b"server error 8" in p.stderr, p.stderr
    p = bench(*log_args(batch_srv, "-n", 100, "--kill-leader-at", 1, "-q"))
    assert p.returncode == 2 and b"not a cluster (cluster_enabled:0)" in p.stderr, p.stderr
    p = bench(*log_args(batch_srv, "-n", 100, "-d", 16, "--verify"))
    assert p.returncode == 2 and b"--verify" in p.stderr, p.stderr
    p = bench(*log_args(batch_srv, "-n", 100, "--order-level", 3))
    assert p.returncode == 2 and b"--order-level" in p.stderr, p.stderr


@pier_only
def test_pier_bench_log_deletes_the_topic_it_created(batch_srv):
    """Regression (issue 11): every run left its bench:log:<pid> stream
    behind. Now it is deleted, unless --keep or it existed before."""
    r = batch_srv.client()
    before = set(r.keys("*"))
    bench_ok(*log_args(batch_srv, "-n", 500, "-d", 100, "-q"))
    assert set(r.keys("*")) == before
    bench_ok(*log_args(batch_srv, "-n", 500, "-d", 100, "-q", "--topic", "kept", "--keep"))
    assert r.xlen("kept") == 500
    r.xadd("mine", {"data": "x"})
    bench_ok(*log_args(batch_srv, "-n", 500, "-d", 100, "-q", "--topic", "mine"))
    assert r.xlen("mine") == 501, "a topic that existed before the run is not deleted"
