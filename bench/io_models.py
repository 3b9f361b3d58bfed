#!/usr/bin/python3
"""pier's two I/O models side by side: --io loop (N event-loop threads) and
--io thread (a thread per connection), at 10, 100 and 1,000 clients, and the
loop model at --threads 1, 2 and 4. Same load generator (pier-bench kv, SET
and GET, 3-byte values, keyspace 100K, no pipelining) for every row; each
row is the median of --rounds runs, alternating the configurations within
a round. Server CPU per request from /proc/PID/stat.

Usage: bench/io-models.sh [--rounds N] [--requests N]
"""
import argparse
import os
import resource
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_redis as cr  # noqa: E402  (shared helpers: servers, runs, CPU)

CONFIGS = [("loop", 1), ("loop", 2), ("loop", 4), ("thread", 0)]


def start(io, threads):
    args = ["--loglevel", "silent", "--io", io, "--maxclients", "10000", "--save", "",
            "--appendonly", "no"]
    if threads:
        args += ["--threads", str(threads)]
    return cr.Server(f"{io}-{threads}",
                     lambda p: [os.path.join(cr.BUILD, "pier-server"), "--port", str(p)] + args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100_000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    servers = {cfg: start(*cfg) for cfg in CONFIGS}
    try:
        print("| model | threads | clients | test | ops/s | p50 us | p99 us | server cpu us/req |")
        print("|---|---|---|---|---|---|---|---|")
        for clients in (10, 100, 1000):
            for test in ("set", "get"):
                runs = {cfg: [] for cfg in CONFIGS}
                for _ in range(args.rounds):
                    for cfg, srv in servers.items():
                        runs[cfg].append(cr.measure(srv, "pier-bench", test, 3, 1,
                                                    args.requests, clients, 100_000))
                for (io, threads), rs in runs.items():
                    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
                    print(f"| {io} | {threads or '-'} | {clients} | {test} | {med('ops'):,.0f} | "
                          f"{med('p50'):.0f} | {med('p99'):.0f} | {med('srv_us'):.2f} |",
                          flush=True)
    finally:
        for s in servers.values():
            s.stop()


if __name__ == "__main__":
    sys.exit(main())
