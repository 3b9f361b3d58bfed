#!/usr/bin/python3
"""Side-by-side comparison of pier-server and redis-server on this machine.

Starts redis-server (no persistence), pier-server and the floor server
(bench/floor-server.c: parse RESP, answer +OK, no store) on free ports, and
runs the same load against each with BOTH load generators (redis-benchmark
and pier-bench kv), alternating the servers run by run (redis, pier, floor,
redis, pier, floor, ...). For every run it reads the server's CPU time
(utime + stime from /proc/PID/stat) over the run and divides by the number
of requests: the figure that compares servers when the client itself needs
a core. Each cell of the table is the median over the rounds; ratios are
medians of the per-round ratios.

Also: a long run (10M vs 100K requests on pier, ratio of throughputs) and
memory (RSS after loading 1M keys of 16-byte keys and values, pier vs
Redis).

Usage: bench/compare-redis.sh [--rounds N] [--quick] [--skip-long] [--skip-memory]
"""

import argparse
import csv
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_us(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000 // CLK_TCK


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# Servers run in a scratch directory so no stray snapshot or AOF is loaded
# or left behind.
WORKDIR = tempfile.mkdtemp(prefix="pier-bench-")


class Server:
    def __init__(self, name, argv_fn):
        self.name, self.port = name, free_port()
        self.proc = subprocess.Popen(argv_fn(self.port), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=WORKDIR)
        wait_port(self.port)

    def flush(self):
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(64)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def start_servers(pier_threads):
    return [
        Server("redis", lambda p: ["redis-server", "--port", str(p), "--save", "",
                                   "--appendonly", "no", "--bind", "127.0.0.1"]),
        Server("pier", lambda p: [os.path.join(BUILD, "pier-server"), "--port", str(p),
                                  "--loglevel", "silent", "--threads", str(pier_threads),
                                  "--save", "", "--appendonly", "no"]),
        Server("floor", lambda p: [os.path.join(BUILD, "floor-server"), str(p)]),
    ]


def children_cpu_us():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((r.ru_utime + r.ru_stime) * 1e6)


def run_redis_benchmark(port, test, size, pipeline, requests, clients, keyspace):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(requests),
         "-d", str(size), "-P", str(pipeline), "-r", str(keyspace), "-t", test, "--csv"],
        capture_output=True, text=True, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    row = rows[0]
    return {"ops": float(row["rps"]), "p50": float(row["p50_latency_ms"]) * 1000,
            "p99": float(row["p99_latency_ms"]) * 1000, "errors": 0}


def run_pier_bench(port, test, size, pipeline, requests, clients, keyspace):
    out = subprocess.run(
        [os.path.join(BUILD, "pier-bench"), "kv", "-p", str(port), "-c", str(clients),
         "-n", str(requests), "-d", str(size), "-P", str(pipeline), "-r", str(keyspace),
         "-t", test, "--json"],
        capture_output=True, text=True, check=True).stdout
    j = json.loads(out)
    return {"ops": j["ops_per_sec"], "p50": j["p50_us"], "p99": j["p99_us"],
            "errors": j["errors"]}


CLIENTS = {"redis-benchmark": run_redis_benchmark, "pier-bench": run_pier_bench}


def measure(server, client, test, size, pipeline, requests, clients, keyspace):
    """One run: the client's figures plus server and client CPU per request."""
    before_srv, before_cli = cpu_us(server.proc.pid), children_cpu_us()
    res = CLIENTS[client](server.port, test, size, pipeline, requests, clients, keyspace)
    res["srv_us"] = (cpu_us(server.proc.pid) - before_srv) / requests
    res["cli_us"] = (children_cpu_us() - before_cli) / requests
    return res


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def compare(args, servers):
    by_name = {s.name: s for s in servers}
    rows = []
    for client in CLIENTS:
        for pipeline in (1, 16):
            for size in (3, 1024):
                for test in ("set", "get"):
                    requests = args.requests * (10 if pipeline > 1 else 1)
                    runs = {n: [] for n in by_name}
                    for _ in range(args.rounds):
                        for name in ("redis", "pier", "floor"):
                            if name == "floor" and test == "get":
                                continue  # the floor answers +OK to all: SET rows only
                            runs[name].append(measure(by_name[name], client, test, size,
                                                      pipeline, requests, args.clients,
                                                      args.keyspace))
                    rows.append((client, test, size, pipeline, runs))
                    print_row(rows[-1], flush=True)
    return rows


def ratio(runs, key, num="pier", den="redis"):
    pairs = zip(runs[num], runs[den])
    return med([a[key] / b[key] for a, b in pairs if b[key]])


HEADER = ("| client | test | value | -P | redis ops/s | pier ops/s | ratio | redis p50 us | "
          "pier p50 us | redis p99 us | pier p99 us | p99 ratio | redis cpu us/req | "
          "pier cpu us/req | cpu ratio | floor cpu us/req | floor/redis |")


def print_row(row, flush=False):
    client, test, size, pipeline, runs = row
    r, p, f = runs["redis"], runs["pier"], runs["floor"]
    floor_cpu = f"{med([x['srv_us'] for x in f]):.2f}" if f else "-"
    floor_ratio = f"{ratio(runs, 'srv_us', 'floor', 'redis'):.2f}" if f else "-"
    print(f"| {client} | {test} | {size} B | {pipeline} | "
          f"{med([x['ops'] for x in r]):,.0f} | {med([x['ops'] for x in p]):,.0f} | "
          f"{ratio(runs, 'ops'):.2f} | "
          f"{med([x['p50'] for x in r]):.0f} | {med([x['p50'] for x in p]):.0f} | "
          f"{med([x['p99'] for x in r]):.0f} | {med([x['p99'] for x in p]):.0f} | "
          f"{ratio(runs, 'p99'):.2f} | "
          f"{med([x['srv_us'] for x in r]):.2f} | {med([x['srv_us'] for x in p]):.2f} | "
          f"{ratio(runs, 'srv_us'):.2f} | {floor_cpu} | {floor_ratio} |", flush=flush)


def client_cost(rows):
    """pier-bench vs redis-benchmark client CPU per request, same server/load."""
    print("\n| test | value | -P | redis-benchmark cpu us/req | pier-bench cpu us/req | ratio |")
    print("|---|---|---|---|---|---|")
    table = {}
    for client, test, size, pipeline, runs in rows:
        table[(client, test, size, pipeline)] = med([x["cli_us"] for x in runs["pier"]])
    for (client, test, size, pipeline), v in table.items():
        if client != "redis-benchmark":
            continue
        mine = table.get(("pier-bench", test, size, pipeline))
        print(f"| {test} | {size} B | {pipeline} | {v:.2f} | {mine:.2f} | {mine / v:.2f} |")


def long_run(args, pier):
    print("\n## Long run (pier, pier-bench, SET 3-byte values, 100 clients, -P 16)\n")
    results = {}
    for n in (100_000, args.long_requests):
        pier.flush()
        results[n] = run_pier_bench(pier.port, "set", 3, 16, n, 100, args.keyspace)
        print(f"- {n:,} requests: {results[n]['ops']:,.0f} ops/s")
    r = results[args.long_requests]["ops"] / results[100_000]["ops"]
    print(f"- long/short throughput ratio: {r:.3f}")


def load_keys(port, n):
    """1M SETs of 16-byte keys and 16-byte values, pipelined in chunks."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        chunk = 10_000
        for base in range(0, n, chunk):
            cmds = b"".join(
                b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$16\r\nval:%012d\r\n" % (i, i)
                for i in range(base, min(n, base + chunk)))
            s.sendall(cmds)
            need, got = 5 * min(chunk, n - base), 0
            while got < need:
                got += len(s.recv(1 << 20))


def memory(args):
    """Fresh servers, so RSS is not inflated by what earlier runs allocated
    (freed memory stays in the process)."""
    print(f"\n## Memory: RSS after loading {args.keys:,} keys (16-byte keys and values)\n")
    print("| server | RSS before KB | RSS after KB | bytes per key |")
    print("|---|---|---|---|")
    per_key = {}
    redis_srv, pier_srv, floor_srv = start_servers(args.pier_threads)
    floor_srv.stop()  # the floor stores nothing: not part of this table
    for srv in (redis_srv, pier_srv):
        try:
            before = rss_kb(srv.proc.pid)
            load_keys(srv.port, args.keys)
            after = rss_kb(srv.proc.pid)
        finally:
            srv.stop()
        per_key[srv.name] = (after - before) * 1024 / args.keys
        print(f"| {srv.name} | {before:,} | {after:,} | {per_key[srv.name]:.1f} |")
    print(f"\npier/redis bytes per key: {per_key['pier'] / per_key['redis']:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100_000,
                    help="requests per run without pipelining (x10 with -P 16)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--keyspace", type=int, default=100_000)
    ap.add_argument("--pier-threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--long-requests", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="1 round, small runs")
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.requests, args.long_requests = 1, 20_000, 1_000_000
    servers = start_servers(args.pier_threads)
    try:
        print(f"# pier vs redis-server, {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{os.cpu_count()} cores, {args.clients} clients, keyspace {args.keyspace:,}, "
              f"{args.rounds} rounds (median), pier --threads {args.pier_threads}\n")
        print(HEADER)
        print("|" + "---|" * (HEADER.count("|") - 1))
        rows = compare(args, servers)
        client_cost(rows)
        if not args.skip_long:
            long_run(args, servers[1])
    finally:
        for s in servers:
            s.stop()
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    sys.exit(main())
