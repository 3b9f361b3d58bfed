"""Client workload for the fault tests, and the checks after a run.

Strong clients (threads, redis-py, 2 s socket timeouts), each bound to one
node, do SET (unique values "<client>-<n>") and GET on a small set of strong
keys. Weak clients do the same with PIER.CONSISTENCY WEAK on weak keys (a
separate key set), values "<session>:<n>". Every op is recorded with
time.monotonic() at invoke and completion. An error reply, a timeout or a
connection error makes the op "info" (outcome unknown), never a failure of
the test; the client then drops its connection and opens a new one (a weak
client then starts a new session: the server's session state is per
connection).

After the run (`Workload.finish` with the cluster healed):
  * final strong GETs of every strong key from every node are added to the
    strong history (so a lost acknowledged write fails the linearizability
    check), and the strong history is checked (linearizability.py);
  * the weak history is checked (sessions.py);
  * weak convergence: every node's weak read of each weak key (fresh
    connections) must agree within a few seconds, on a value some weak client
    wrote (or None when none was).
"""
from __future__ import annotations

import random
import threading
import time

import redis

import linearizability
import sessions
from linearizability import Op


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def snapshot(self):
        with self.lock:
            return list(self.ops)


def _decode(v):
    return v.decode() if isinstance(v, bytes) else v


class _Client(threading.Thread):
    weak = False

    def __init__(self, wl, node, name, keys, seed):
        super().__init__(daemon=True, name=name)
        self.wl, self.node, self.name, self.keys = wl, node, name, keys
        self.rnd = random.Random(seed)
        self.conn = None
        self.session = 0
        self.n = 0
        self.ok_ops = 0
        self.info_ops = 0

    def sid(self):
        return f"{self.name}.s{self.session}" if self.weak else self.name

    def connect(self):
        self.session += 1
        c = self.node.client(socket_timeout=self.wl.timeout, socket_connect_timeout=self.wl.timeout,
                             single_connection_client=True)
        if self.weak:
            if c.execute_command("PIER.CONSISTENCY", "WEAK") not in (b"OK", "OK", True):
                raise redis.RedisError("PIER.CONSISTENCY WEAK refused")
        self.conn = c

    def drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def run(self):
        hist = self.wl.weak_history if self.weak else self.wl.strong_history
        while not self.wl.stopping.is_set():
            if self.conn is None:
                try:
                    self.connect()
                except (redis.RedisError, OSError):
                    self.drop()
                    self.wl.stopping.wait(0.1)
                    continue
            key = self.rnd.choice(self.keys)
            sid = self.sid()
            if self.rnd.random() < self.wl.write_ratio:
                self.n += 1
                value = f"{sid}:{self.n}" if self.weak else f"{self.name}-{self.n}"
                op = Op(sid, key, "set", value, time.monotonic(), None)
                try:
                    self.conn.set(key, value)
                    op.complete = time.monotonic()
                    self.ok_ops += 1
                except (redis.RedisError, OSError) as e:
                    op.status = "info"
                    op.error = repr(e)
                    self.info_ops += 1
                    self.drop()
                hist.add(op)
            else:
                op = Op(sid, key, "get", None, time.monotonic(), None)
                try:
                    op.value = _decode(self.conn.get(key))
                    op.complete = time.monotonic()
                    self.ok_ops += 1
                    hist.add(op)
                except (redis.RedisError, OSError):
                    self.info_ops += 1      # an unknown read constrains nothing: not recorded
                    self.drop()
            if self.wl.think_s:
                self.wl.stopping.wait(self.rnd.uniform(0, self.wl.think_s))
        self.drop()


class StrongClient(_Client):
    weak = False


class WeakClient(_Client):
    weak = True


class Workload:
    def __init__(self, cluster, strong_per_node=2, weak_per_node=1, strong_keys=4, weak_keys=3,
                 write_ratio=0.5, timeout=2.0, think_s=0.002, seed=None):
        self.cluster = cluster
        self.timeout = timeout
        self.think_s = think_s
        self.write_ratio = write_ratio
        self.strong_keys = [f"s{i}" for i in range(strong_keys)]
        self.weak_keys = [f"w{i}" for i in range(weak_keys)]
        self.strong_history = History()
        self.weak_history = History()
        self.stopping = threading.Event()
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.clients = []
        for nd in cluster.nodes.values():
            for j in range(strong_per_node):
                self.clients.append(StrongClient(self, nd, f"c{nd.id}{chr(97 + j)}", self.strong_keys,
                                                 self.seed * 1000 + nd.id * 10 + j))
            for j in range(weak_per_node):
                self.clients.append(WeakClient(self, nd, f"w{nd.id}{chr(97 + j)}", self.weak_keys,
                                               self.seed * 1000 + 500 + nd.id * 10 + j))

    def start(self):
        for c in self.clients:
            c.start()
        return self

    def stop(self):
        self.stopping.set()
        for c in self.clients:
            c.join(timeout=self.timeout * 3 + 5)
        stuck = [c.name for c in self.clients if c.is_alive()]
        assert not stuck, f"workload clients did not stop: {stuck}"

    def counts(self):
        ok = sum(c.ok_ops for c in self.clients)
        info = sum(c.info_ops for c in self.clients)
        return ok, info

    def ops_between(self, t0, t1, strong=True):
        """Completed ops of the strong (or weak) history that completed in [t0, t1]."""
        h = (self.strong_history if strong else self.weak_history).snapshot()
        return [o for o in h if not o.is_info and t0 <= o.complete <= t1]

    # ---- after the run

    def final_strong_reads(self, timeout=20.0):
        """Strong GET of every strong key from every node, added to the history.
        Retries on errors (recorded as nothing) until each read succeeds."""
        for nd in self.cluster.nodes.values():
            if not nd.alive():
                continue  # a node left down on purpose (e.g. an old leader that never returns)
            for key in self.strong_keys:
                deadline = time.monotonic() + timeout
                while True:
                    c = nd.client(socket_timeout=self.timeout)
                    op = Op(f"final@{nd.id}", key, "get", None, time.monotonic(), None)
                    try:
                        op.value = _decode(c.get(key))
                        op.complete = time.monotonic()
                        self.strong_history.add(op)
                        break
                    except (redis.RedisError, OSError) as e:
                        if time.monotonic() > deadline:
                            raise AssertionError(f"final strong read of {key} on node {nd.id} "
                                                 f"failed for {timeout}s: {e!r}")
                        time.sleep(0.1)
                    finally:
                        c.close()

    def weak_convergence(self, timeout=10.0):
        """Every node's weak read of each weak key agrees (fresh connections)."""
        written = {}
        for o in self.weak_history.snapshot():
            if o.op == "set":
                written.setdefault(o.key, set()).add(o.value)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            views = {}
            try:
                for nd in self.cluster.nodes.values():
                    if not nd.alive():
                        continue
                    c = nd.client(socket_timeout=self.timeout)
                    try:
                        c.execute_command("PIER.CONSISTENCY", "WEAK")
                        views[nd.id] = {k: _decode(c.get(k)) for k in self.weak_keys}
                    finally:
                        c.close()
            except (redis.RedisError, OSError) as e:
                last = repr(e)
            else:
                last = views
                agree = all(views[i] == views[min(views)] for i in views)
                if agree:
                    bad = {k: v for k, v in views[min(views)].items()
                           if not (v is None and k not in written) and v not in written.get(k, ())}
                    assert not bad, f"weak reads converged on values nobody wrote: {bad}"
                    return views[min(views)]
            if time.monotonic() > deadline:
                raise AssertionError(f"weak reads did not converge within {timeout}s: {last}")
            time.sleep(0.1)

    def check(self, convergence=True):
        """Final reads, then every check; returns a report string. Raises
        AssertionError naming every check that failed (all of them run)."""
        self.final_strong_reads()
        strong = self.strong_history.snapshot()
        weak = self.weak_history.snapshot()
        failures = []
        lr = linearizability.check(strong, budget_s=60)
        if lr.ok is None:
            failures.append(f"linearizability check gave up: {lr.message}")
        elif not lr.ok:
            failures.append(f"strong history is NOT linearizable:\n{lr.message}")
        sr = sessions.check(weak)
        if not sr.ok:
            failures.append(f"weak history violates session guarantees:\n{sr}")
        conv = None
        if convergence and self.weak_keys:
            try:
                conv = self.weak_convergence()
            except AssertionError as e:
                failures.append(str(e))
        s_ok = sum(1 for o in strong if not o.is_info)
        s_info = sum(1 for o in strong if o.is_info)
        w_ok = sum(1 for o in weak if not o.is_info)
        report = (f"strong: {s_ok} ok + {s_info} info ops, {lr if lr.ok else 'NOT linearizable'}; "
                  f"weak: {w_ok} ok ops, {'session guarantees hold' if sr.ok else 'VIOLATIONS'}; "
                  f"weak converged: {conv}")
        if failures:
            raise AssertionError(report + "\n" + "\n".join(failures))
        return report
