#!/usr/bin/python3
"""Streams side by side: pier-server vs redis-server on this machine.

Rows (each the median of --rounds runs, alternating the servers):
  - XADD pipelined (-P 16, 50 clients) with 100-byte and 4 KB entries
    (redis-benchmark with the value written literally in the command, since
    its __data__ placeholder does not apply to custom commands);
  - XRANGE of 1,000 entries (redis-benchmark, 50 clients, no pipelining);
  - XREADGROUP COUNT 100 + XACK of those 100 IDs (one pipelined round trip
    per 100 entries, from a Python client: client-bound, so the figure that
    compares the servers is the server CPU per entry).
Each row reports throughput (entries/s and MB/s where it applies) and the
server CPU microseconds per entry (/proc/PID/stat over the run).

Usage: bench/compare-streams.sh [--rounds N] [--quick]
"""
import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_redis as cr  # noqa: E402


def start_servers():
    return [
        cr.Server("redis", lambda p: ["redis-server", "--port", str(p), "--save", "",
                                      "--appendonly", "no", "--bind", "127.0.0.1"]),
        cr.Server("pier", lambda p: [os.path.join(cr.BUILD, "pier-server"), "--port", str(p),
                                     "--loglevel", "silent", "--save", "", "--appendonly", "no"]),
    ]


def redis_benchmark(port, n, clients, pipeline, *cmd):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(n),
         "-P", str(pipeline), "--csv", *cmd], capture_output=True, text=True, check=True).stdout
    return float(list(csv.DictReader(io.StringIO(out)))[0]["rps"])


def xadd_row(srv, size, n):
    r = redis.Redis(port=srv.port)
    r.delete("bench:xadd")
    before = cr.cpu_us(srv.proc.pid)
    rps = redis_benchmark(srv.port, n, 50, 16, "XADD", "bench:xadd", "*", "data", "x" * size)
    cpu = cr.cpu_us(srv.proc.pid) - before
    r.delete("bench:xadd")
    return {"eps": rps, "mbps": rps * size / 1e6, "cpu": cpu / n}


def xrange_row(srv, n):
    r = redis.Redis(port=srv.port)
    r.delete("bench:range")
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.xadd("bench:range", {"data": "x" * 100}, id=f"1-{i + 1}")
    p.execute()
    before = cr.cpu_us(srv.proc.pid)
    rps = redis_benchmark(srv.port, n, 50, 1, "XRANGE", "bench:range", "-", "+", "COUNT", "1000")
    cpu = cr.cpu_us(srv.proc.pid) - before
    r.delete("bench:range")
    return {"eps": rps * 1000, "mbps": rps * 1000 * 100 / 1e6, "cpu": cpu / (n * 1000)}


def group_row(srv, entries):
    r = redis.Redis(port=srv.port)
    r.delete("bench:group")
    p = r.pipeline(transaction=False)
    for i in range(entries):
        p.xadd("bench:group", {"data": "x" * 100}, id=f"1-{i + 1}")
        if i % 1000 == 999:
            p.execute()
    p.execute()
    r.xgroup_create("bench:group", "g", id="0")
    before, t0 = cr.cpu_us(srv.proc.pid), time.monotonic()
    done = 0
    while done < entries:
        got = r.xreadgroup("g", "c1", {"bench:group": ">"}, count=100)
        ids = [i for _, msgs in got for i, _ in msgs]
        if not ids:
            break
        r.xack("bench:group", "g", *ids)
        done += len(ids)
    secs = time.monotonic() - t0
    cpu = cr.cpu_us(srv.proc.pid) - before
    assert r.xpending("bench:group", "g")["pending"] == 0, "every entry acknowledged"
    r.delete("bench:group")
    return {"eps": done / secs, "mbps": done * 100 / secs / 1e6, "cpu": cpu / max(done, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    rows = [
        ("XADD 100 B, -P 16, 50 clients", lambda s: xadd_row(s, 100, int(400_000 * scale))),
        ("XADD 4 KB, -P 16, 50 clients", lambda s: xadd_row(s, 4096, int(100_000 * scale))),
        ("XRANGE 1,000 entries, 50 clients", lambda s: xrange_row(s, int(5_000 * scale))),
        ("XREADGROUP 100 + XACK, 1 client", lambda s: group_row(s, int(200_000 * scale))),
    ]
    servers = start_servers()
    try:
        print(f"# streams: pier vs redis-server, {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{args.rounds} rounds (median), entries per second and server CPU per entry\n")
        print("| workload | redis entries/s | pier entries/s | ratio | redis MB/s | pier MB/s | "
              "redis cpu us/entry | pier cpu us/entry | cpu ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, fn in rows:
            res = {s.name: [] for s in servers}
            for _ in range(args.rounds):
                for s in servers:
                    res[s.name].append(fn(s))
            med = lambda who, k: statistics.median(x[k] for x in res[who])  # noqa: E731
            ratio = lambda k: statistics.median(  # noqa: E731
                p[k] / r[k] for p, r in zip(res["pier"], res["redis"]) if r[k])
            print(f"| {name} | {med('redis', 'eps'):,.0f} | {med('pier', 'eps'):,.0f} | "
                  f"{ratio('eps'):.2f} | {med('redis', 'mbps'):.1f} | {med('pier', 'mbps'):.1f} | "
                  f"{med('redis', 'cpu'):.3f} | {med('pier', 'cpu'):.3f} | {ratio('cpu'):.2f} |",
                  flush=True)
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    sys.exit(main())
