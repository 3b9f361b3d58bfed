#!/usr/bin/python3
"""Where a request's CPU goes: user vs system time per request for
redis-server, pier (one loop thread) and the floor server, each pinned to
core 0 with the load generator (pier-bench kv, 100 clients, SET, no
pipelining) pinned to core 1, alternating the servers round by round.

Usage: bench/cpu-split.sh [rounds] (default 5)
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_redis as cr  # noqa: E402

REQUESTS = 200_000


def pinned(argv):
    return ["taskset", "-c", "0"] + argv


def user_sys_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    servers = [
        cr.Server("redis-server", lambda p: pinned(
            ["redis-server", "--port", str(p), "--save", "", "--appendonly", "no"])),
        cr.Server("pier (1 loop thread)", lambda p: pinned(
            [os.path.join(cr.BUILD, "pier-server"), "--port", str(p), "--threads", "1",
             "--loglevel", "silent", "--save", "", "--appendonly", "no"])),
        cr.Server("floor", lambda p: pinned([os.path.join(cr.BUILD, "floor-server"), str(p)])),
    ]
    tick_us = 1e6 / cr.CLK_TCK
    res = {s.name: [] for s in servers}
    try:
        for _ in range(rounds):
            for s in servers:
                u0, s0 = user_sys_ticks(s.proc.pid)
                subprocess.run(["taskset", "-c", "1", os.path.join(cr.BUILD, "pier-bench"), "kv",
                                "-p", str(s.port), "-c", "100", "-n", str(REQUESTS), "-t", "set",
                                "--json"], capture_output=True, check=True)
                u1, s1 = user_sys_ticks(s.proc.pid)
                res[s.name].append(((u1 - u0) * tick_us / REQUESTS, (s1 - s0) * tick_us / REQUESTS))
    finally:
        for s in servers:
            s.stop()
    print("| server | user us/req | system us/req |")
    print("|---|---|---|")
    for name, v in res.items():
        print(f"| {name} | {statistics.median(x[0] for x in v):.2f} | "
              f"{statistics.median(x[1] for x in v):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
