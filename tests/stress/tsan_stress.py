#!/usr/bin/env python3
"""`make tsan`: a multi-client stress of the ThreadSanitizer build.

Two phases of --seconds each:
1. one server (4 loop threads, AOF everysec, save rules) under KV writers
   and readers, stream producers and consumer groups, blocking XREAD
   readers woken by writers, pub/sub publishers and subscribers, admin
   traffic (CLIENT LIST/KILL, CONFIG SET, INFO, BGSAVE, BGREWRITEAOF);
2. a 3-node cluster (tests/fault/cluster.py) under strong and weak
   clients, with blocking reads and pub/sub on every node.

Each workload runs in its own process (the server sees real concurrency).
Exits 1 when ThreadSanitizer reported anything (its reports go to
build/tsan/reports/), when a server crashed, or when a workload failed.
"""
import argparse
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fault"))
PIER = os.environ.get("PIER_SERVER", str(REPO / "build" / "tsan" / "pier-server"))
REPORTS = REPO / "build" / "tsan" / "reports"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tsan_env():
    env = dict(os.environ)
    # detect_deadlocks=0: its detector holds at most 64 locks per thread, and a
    # fork for BGSAVE takes all 256 shard locks (in ascending order, by design).
    env["TSAN_OPTIONS"] = f"halt_on_error=0 detect_deadlocks=0 log_path={REPORTS}/tsan"
    return env


# ---- workloads: each runs until `until` (monotonic), returns an op count

def kv(port, until, seed):
    r, rnd, n = redis.Redis(port=port), random.Random(seed), 0
    while time.monotonic() < until:
        k = f"k{rnd.randrange(500)}"
        op = rnd.randrange(8)
        if op == 0:
            r.set(k, "v" * rnd.randrange(1, 200), ex=rnd.choice([None, 1, 100]))
        elif op == 1:
            r.get(k)
        elif op == 2:
            try:
                r.incr(f"c{rnd.randrange(50)}")
            except redis.ResponseError:
                pass
        elif op == 3:
            r.mset({f"k{rnd.randrange(500)}": i for i in range(5)})
        elif op == 4:
            r.delete(k, f"k{rnd.randrange(500)}")
        elif op == 5:
            r.scan(0, count=50)
        elif op == 6:
            r.expire(k, rnd.randrange(1, 5))
        else:
            pipe = r.pipeline(transaction=False)
            for _ in range(20):
                pipe.set(f"p{rnd.randrange(100)}", "x")
            pipe.execute()
        n += 1
    return n


def streams(port, until, seed):
    r, rnd, n = redis.Redis(port=port), random.Random(seed), 0
    s = f"s{seed % 3}"
    try:
        r.xgroup_create(s, "g", id="0", mkstream=True)
    except redis.ResponseError:
        pass
    while time.monotonic() < until:
        r.xadd(s, {"f": "v" * rnd.randrange(1, 100)}, maxlen=2000, approximate=False)
        got = r.xreadgroup("g", f"c{seed}", {s: ">"}, count=5)
        for _, entries in got or []:
            if entries:
                r.xack(s, "g", *[e[0] for e in entries])
        if rnd.random() < 0.05:
            r.xautoclaim(s, "g", f"c{seed}", 0, count=5)
        n += 1
    return n


def blocking(port, until, seed):
    r, n = redis.Redis(port=port, socket_timeout=10), 0
    key = f"b{seed % 2}"
    while time.monotonic() < until:
        r.xread({key: "$"}, block=200, count=1)
        n += 1
    return n


def blocking_writer(port, until, seed):
    r, n = redis.Redis(port=port), 0
    while time.monotonic() < until:
        r.xadd(f"b{n % 2}", {"x": n}, maxlen=100)
        time.sleep(0.002)
        n += 1
    return n


def pubsub_sub(port, until, seed):
    r = redis.Redis(port=port)
    p = r.pubsub()
    p.subscribe("ch0", "ch1")
    p.psubscribe("ch*")
    n = 0
    while time.monotonic() < until:
        if p.get_message(timeout=0.1):
            n += 1
        if n % 500 == 499:
            p.unsubscribe("ch1")
            p.subscribe("ch1")
    p.close()
    return n


def pubsub_pub(port, until, seed):
    r, n = redis.Redis(port=port), 0
    while time.monotonic() < until:
        r.publish(f"ch{n % 3}", "m" * 50)
        n += 1
    return n


def admin(port, until, seed):
    r, rnd, n = redis.Redis(port=port), random.Random(seed), 0
    while time.monotonic() < until:
        op = rnd.randrange(6)
        try:
            if op == 0:
                r.client_list()
            elif op == 1:
                r.info("all")
            elif op == 2:
                r.config_set("maxmemory-samples", rnd.randrange(3, 10))
            elif op == 3 and rnd.random() < 0.1:
                r.bgsave()
            elif op == 4 and rnd.random() < 0.1:
                r.bgrewriteaof()
            elif op == 5:
                victim = redis.Redis(port=port)
                victim.client_setname("victim")
                victim.ping()
                r.execute_command("CLIENT", "KILL", "SKIPME", "yes", "ID",
                                  victim.client_id())
        except redis.ResponseError:
            pass  # a save already in progress
        n += 1
        time.sleep(0.01)
    return n


def resilient(fn, port, until, seed):
    """Run fn until `until`, starting it again after a transient error (a
    cluster that is electing under the sanitizer's slowdown answers
    CLUSTERDOWN or times out). Returns (ops, errors)."""
    ops = errors = 0
    while time.monotonic() < until:
        try:
            ops += fn(port, until, seed)
        except (redis.TimeoutError, redis.ConnectionError) as e:
            errors += 1
            last = e
            time.sleep(0.1)
        except redis.ResponseError as e:
            if "CLUSTERDOWN" not in str(e) and "TRYAGAIN" not in str(e):
                raise
            errors += 1
            last = e
            time.sleep(0.1)
    if ops == 0 and errors:
        raise RuntimeError(f"no operation succeeded ({errors} errors, last {last!r})")
    return ops, errors


def run_workers(specs, seconds):
    until = time.monotonic() + seconds
    with mp.Pool(len(specs)) as pool:
        results = [pool.apply_async(resilient, (fn, port, until, i))
                   for i, (fn, port) in enumerate(specs)]
        out = []
        for (fn, _), res in zip(specs, results):
            try:
                ops, errors = res.get(timeout=seconds + 120)
                out.append((fn.__name__, ops, errors, None))
            except Exception as e:  # a workload failed: report it
                out.append((fn.__name__, 0, 0, repr(e)))
        return out


def single_node(seconds, tmp):
    port = free_port()
    log = Path(tmp) / "single.log"
    proc = subprocess.Popen([PIER, "--port", str(port), "--threads", "4", "--dir", tmp,
                             "--appendonly", "yes", "--save", "1 100", "--logfile", str(log)],
                            env=tsan_env())
    deadline = time.monotonic() + 30
    while True:
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the tsan server did not start:\n" + log.read_text())
            time.sleep(0.1)
    specs = [(kv, port)] * 3 + [(streams, port)] * 2 + [(blocking, port)] * 2 + \
        [(blocking_writer, port), (pubsub_sub, port), (pubsub_sub, port), (pubsub_pub, port),
         (admin, port)]
    out = run_workers(specs, seconds)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    return out, [] if code == 0 else [f"single node exit code {code}"]


def cluster(seconds, tmp):
    os.environ["PIER_SERVER"] = PIER
    os.environ["TSAN_OPTIONS"] = tsan_env()["TSAN_OPTIONS"]
    import cluster as fault_cluster
    fault_cluster.PIER_BIN = PIER
    # The sanitizer slows every node several times: longer Raft timers.
    c = fault_cluster.Cluster(3, Path(tmp) / "cluster", net="loopback",
                              extra_args=os.environ.get("TSAN_CLUSTER_ARGS", "").split())
    c.start(timeout=60)
    ports = [nd.port for nd in c.nodes.values()]
    specs = [(kv, p) for p in ports] + [(streams, ports[0]), (blocking, ports[1]),
                                        (blocking_writer, ports[2]), (pubsub_sub, ports[1]),
                                        (pubsub_pub, ports[1])]
    out = run_workers(specs, seconds)
    return out, c.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--phase", choices=("single", "cluster"), action="append",
                    help="run only this phase (repeatable; default both)")
    args = ap.parse_args()
    shutil.rmtree(REPORTS, ignore_errors=True)
    REPORTS.mkdir(parents=True)
    problems = []
    with tempfile.TemporaryDirectory(prefix="pier-tsan-") as tmp:
        phases = [(n, f) for k, n, f in (("single", "single node", single_node),
                                         ("cluster", "3-node cluster", cluster))
                  if not args.phase or k in args.phase]
        for name, phase in phases:
            print(f"tsan stress: {name}, {args.seconds:.0f} s", flush=True)
            out, probs = phase(args.seconds, tmp)
            for wname, ops, errors, err in out:
                print(f"  {wname:16} {ops:8d} ops {errors:4d} transient errors"
                      f"{'  FAILED: ' + err if err else ''}")
                if err:
                    problems.append(f"{name}: workload {wname} failed: {err}")
            problems += [f"{name}: {p}" for p in probs]
    reports = sorted(REPORTS.glob("tsan*"))
    for rep in reports:
        text = rep.read_text(errors="replace")
        warnings = text.count("WARNING: ThreadSanitizer")
        problems.append(f"{rep.name}: {warnings} ThreadSanitizer report(s)")
        print(text[:6000])
    for p in problems:
        print("tsan stress:", p)
    print(f"tsan stress: {'FAILED' if problems else 'ok: no ThreadSanitizer report'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
