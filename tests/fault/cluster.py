"""Cluster harness for the fault tests: N pier nodes as separate processes.

Binary: $PIER_SERVER (default build/asan/pier-server).

Network and partitions. Processes sharing loopback cannot be partitioned
honestly without a packet filter, and this container has neither iptables nor
nft (nor tc actions): so, where `ip netns` works (root), every node runs in a
network namespace of its own with two interfaces:

  bus0  10.201.T.i  on a bridge shared by the nodes (the cluster bus: the
        address in cluster-nodes)
  cli0  10.202.T.i  on a second bridge that also has 10.202.T.254 in the
        test's namespace (clients connect here: `--bind 10.202.T.i`)

`partition(node)` sets the bridge side of the node's bus link down: every bus
packet to or from that node is dropped (as by a dead switch port: no reset,
TCP retransmits, connects time out) while clients still reach it, so an
isolated leader keeps taking client requests. `heal()` brings links back up.

Without netns (not root, or `ip netns add` fails) nodes run on 127.0.0.1 and
`partition(node)` falls back to SIGSTOP of that node: it is then cut from
clients too, which is weaker (an isolated leader cannot serve stale reads).
`Cluster.partition_method` says which one ran ("netns" or "sigstop"); it is
printed at start. PIER_FAULT_NET=loopback forces the fallback.
"""
from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]
PIER_BIN = os.environ.get("PIER_SERVER", str(REPO / "build" / "asan" / "pier-server"))
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "ThreadSanitizer")
IP = shutil.which("ip") or "/usr/sbin/ip"

_netns_ok = None


def _run(*args, check=True):
    p = subprocess.run([IP, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p


def netns_available() -> bool:
    """Can this process make namespaces, veth pairs and bridges? Checked once."""
    global _netns_ok
    if _netns_ok is None:
        if os.environ.get("PIER_FAULT_NET", "").lower() == "loopback" or os.geteuid() != 0:
            _netns_ok = False
        else:
            name = f"pierprobe{os.getpid()}"
            br = f"pfp{os.getpid() % 100000}"
            try:
                _run("netns", "add", name)
                _run("link", "add", br, "type", "bridge")
                _run("link", "add", br + "a", "type", "veth", "peer", "name", br + "b")
                _run("link", "set", br + "b", "netns", name)
                _netns_ok = True
            except (RuntimeError, OSError):
                _netns_ok = False
            finally:
                _run("link", "del", br + "a", check=False)
                _run("link", "del", br, check=False)
                _run("netns", "del", name, check=False)
    return _netns_ok


class NetnsNet:
    """Two bridges and one namespace per node (see the module docstring)."""

    method = "netns"

    def __init__(self, n):
        self.n = n
        used = _run("netns", "list").stdout
        links = _run("link").stdout
        tag = os.getpid() % 200 + 20
        for _ in range(250):
            if f"pier{tag}n" not in used and f"pf{tag}" not in links:
                break
            tag = tag % 250 + 1
        self.tag = tag
        self.bus_br, self.cli_br = f"pf{tag}bb", f"pf{tag}cb"
        self.created = False

    def ns(self, i):
        return f"pier{self.tag}n{i}"

    def bus_addr(self, i):
        return f"10.201.{self.tag}.{i}"

    def cli_addr(self, i):
        return f"10.202.{self.tag}.{i}"

    def bus_link(self, i):
        return f"pf{self.tag}b{i}"

    def setup(self):
        self.created = True
        for br in (self.bus_br, self.cli_br):
            _run("link", "add", br, "type", "bridge")
            _run("link", "set", br, "up")
        _run("addr", "add", f"10.202.{self.tag}.254/24", "dev", self.cli_br)
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            _run("netns", "add", ns)
            _run("-n", ns, "link", "set", "lo", "up")
            for kind, br, inner, addr in (("b", self.bus_br, "bus0", self.bus_addr(i)),
                                          ("c", self.cli_br, "cli0", self.cli_addr(i))):
                outer = f"pf{self.tag}{kind}{i}"
                tmp = f"pf{self.tag}{kind}{i}x"
                _run("link", "add", outer, "type", "veth", "peer", "name", tmp)
                _run("link", "set", outer, "master", br)
                _run("link", "set", outer, "up")
                _run("link", "set", tmp, "netns", ns)
                _run("-n", ns, "link", "set", tmp, "name", inner)
                _run("-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
                _run("-n", ns, "link", "set", inner, "up")

    def prefix(self, i):
        return [IP, "netns", "exec", self.ns(i)]

    def cut(self, i):
        _run("link", "set", self.bus_link(i), "down")

    def mend(self, i):
        _run("link", "set", self.bus_link(i), "up")

    def teardown(self):
        if not self.created:
            return
        for i in range(1, self.n + 1):
            _run("netns", "del", self.ns(i), check=False)
            for kind in "bc":
                _run("link", "del", f"pf{self.tag}{kind}{i}", check=False)
        for br in (self.bus_br, self.cli_br):
            _run("link", "del", br, check=False)
        self.created = False


class LoopbackNet:
    method = "sigstop"

    def __init__(self, n):
        self.n = n
        self.ports = {}

    def setup(self):
        pass

    def bus_addr(self, i):
        return "127.0.0.1"

    cli_addr = bus_addr

    def prefix(self, i):
        return []

    def teardown(self):
        pass


def _free_port_pair():
    """A port P with P and P+10000 both free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", p + 10000))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


class Node:
    def __init__(self, cluster, nid):
        self.cluster, self.id = cluster, nid
        net = cluster.net
        self.host = net.cli_addr(nid)          # where clients connect
        self.bus_host = net.bus_addr(nid)      # the cluster-nodes address
        self.port = 7000 + nid if isinstance(net, NetnsNet) else _free_port_pair()
        self.dir = cluster.workdir / f"n{nid}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "server.log"
        self.proc = None
        self.paused = False
        self.partitioned = False
        self.starts = 0
        self.killed = False     # set by kill9: the exit was ours

    def __repr__(self):
        return f"<node {self.id} {self.host}:{self.port}{' down' if not self.alive() else ''}>"

    def argv(self):
        c = self.cluster
        return c.net.prefix(self.id) + [
            PIER_BIN, "--port", str(self.port), "--bind", self.host, "--dir", str(self.dir),
            "--save", "", "--protected-mode", "no", "--appendonly", "yes", "--appendfsync", c.appendfsync, "--loglevel", "notice",
            "--cluster-node-id", str(self.id), "--cluster-nodes", c.nodes_spec(),
        ] + (["--cluster-secret", c.secret] if c.secret_as_option else
             ["--cluster-secret-file", str(c.secret_file)]) + \
            (["--requirepass", c.password] if c.password else []) + \
            [str(a) for a in c.extra_args]

    def shown_argv(self):
        """argv with the secrets hidden (the log must not hold them)."""
        out = self.argv()
        for i, a in enumerate(out[:-1]):
            if a in ("--cluster-secret", "--requirepass"):
                out[i + 1] = "(hidden)"
        return out

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        if self.proc is not None and not self.killed:
            self.cluster.crashes.append(f"node {self.id}: exited by itself with code {self.proc.returncode}")
        self.killed = False
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== harness: start #{self.starts} at {time.time():.3f}: "
                      f"{' '.join(self.shown_argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(self.dir), env=env)
        self.paused = False

    def wait_up(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.id} exited with {self.proc.returncode} at start\n{self.logs()}")
            try:
                c = self.client(socket_timeout=1, socket_connect_timeout=0.5)
                try:
                    if c.ping():
                        return
                finally:
                    c.close()
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {self.id} not answering PING in {timeout}s\n{self.logs()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kw):
        kw.setdefault("socket_timeout", 2.0)
        kw.setdefault("socket_connect_timeout", 2.0)
        kw.setdefault("password", self.cluster.password)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def info(self, timeout=1.0):
        """INFO cluster as a dict, or None when the node does not answer."""
        if not self.alive() or self.paused:
            return None
        c = self.client(socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return c.info("cluster")
        except redis.RedisError:
            return None
        finally:
            c.close()

    def kill9(self):
        if self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False
        self.killed = True
        self.proc.kill()
        self.proc.wait()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout=15.0):
        """SIGTERM; returns a list of problems (exit code, sanitizer reports)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append(f"node {self.id}: did not exit within {timeout}s of SIGTERM")
            else:
                if self.proc.returncode != 0:
                    problems.append(f"node {self.id}: exit code {self.proc.returncode} after SIGTERM")
        return problems

    def sanitizer_problems(self):
        text = self.log_text()
        return [f"node {self.id}: sanitizer report ({m!r}) in its log" for m in SANITIZER_MARKERS if m in text]

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def logs(self, limit=6000):
        t = self.log_text()
        if len(t) > limit:
            t = "...\n" + t[-limit:]
        return f"----- node {self.id} log ({self.log_path}) -----\n{t}"


class Cluster:
    def __init__(self, n, workdir, extra_args=(), appendfsync="everysec", net=None,
                 password=None, secret_as_option=False):
        """password: --requirepass for every node (the harness's clients
        AUTH with it). secret_as_option: pass the bus secret as
        --cluster-secret instead of --cluster-secret-file."""
        self.n = n
        self.password = password
        self.secret_as_option = secret_as_option
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args)
        self.appendfsync = appendfsync
        use_netns = netns_available() if net is None else net == "netns"
        self.net = NetnsNet(n) if use_netns else LoopbackNet(n)
        self.partition_method = self.net.method
        self.nodes = {}
        # the bus secret every node proves it holds (docs/CONSISTENCY.md)
        self.secret = secrets.token_hex(32)
        self.secret_file = self.workdir / "cluster.key"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.secret + "\n")
        self.events = []   # (monotonic time, text): what the harness did
        self.crashes = []  # nodes that exited without being killed

    def log(self, text):
        self.events.append((time.monotonic(), text))
        print(f"[cluster {time.strftime('%H:%M:%S')} mono {self.events[-1][0]:.3f}] {text}", flush=True)

    def nodes_spec(self):
        return ",".join(f"{nd.id}@{nd.bus_host}:{nd.port}" for nd in self.nodes.values())

    def start(self, timeout=20.0):
        if not (os.path.isfile(PIER_BIN) and os.access(PIER_BIN, os.X_OK)):
            raise RuntimeError(f"pier server binary not found: {PIER_BIN!r} (set PIER_SERVER or "
                               f"`make build/asan/pier-server`)")
        atexit.register(self._atexit)
        self.net.setup()
        for i in range(1, self.n + 1):
            self.nodes[i] = Node(self, i)
        self.log(f"{self.n} nodes, partitions by {self.partition_method}: {self.nodes_spec()}")
        for nd in self.nodes.values():
            nd.start()
        for nd in self.nodes.values():
            nd.wait_up()
        return self.wait_leader(timeout)

    # ---- leader

    def infos(self):
        return {i: nd.info() for i, nd in self.nodes.items()}

    def find_leader(self, among=None):
        """The node that reports role leader and serving 1 (highest term wins), or None."""
        best = None
        for i in among or self.nodes:
            inf = self.nodes[i].info()
            if inf and inf.get("cluster_role") == "leader" and int(inf.get("cluster_serving", 0)) == 1:
                if best is None or int(inf["cluster_term"]) > best[1]:
                    best = (self.nodes[i], int(inf["cluster_term"]))
        return best[0] if best else None

    def wait_leader(self, timeout=10.0, among=None, exclude=(), interval=0.02):
        """Poll until a serving leader (not in exclude) is found; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            cand = [i for i in (among or self.nodes) if i not in {getattr(e, "id", e) for e in exclude}]
            ld = self.find_leader(cand)
            if ld is not None:
                return ld
            if time.monotonic() >= deadline:
                raise AssertionError(f"no serving leader within {timeout}s; INFO: {self.infos()}\n"
                                     + "\n".join(nd.logs(3000) for nd in self.nodes.values()))
            time.sleep(interval)

    def wait_all_serving(self, timeout=15.0):
        """Every live node serves and they agree on the leader."""
        deadline = time.monotonic() + timeout
        while True:
            infos = {i: nd.info() for i, nd in self.nodes.items() if nd.alive()}
            leaders = {int(v["cluster_leader_id"]) for v in infos.values() if v}
            if all(v and int(v.get("cluster_serving", 0)) == 1 for v in infos.values()) and \
                    len(leaders) == 1 and 0 not in leaders:
                return self.nodes[leaders.pop()]
            if time.monotonic() >= deadline:
                raise AssertionError(f"nodes not all serving with one leader within {timeout}s: {infos}")
            time.sleep(0.05)

    def followers(self, leader):
        return [nd for nd in self.nodes.values() if nd is not leader]

    # ---- faults

    def kill9(self, nd):
        self.log(f"kill -9 node {nd.id}")
        nd.kill9()

    def restart(self, nd):
        self.log(f"restart node {nd.id}")
        nd.start()
        nd.wait_up()

    def terminate(self, nd):
        """SIGTERM node nd and wait: a clean stop, as an operator's. A bad exit
        (code, timeout) is kept as a problem for the teardown."""
        self.log(f"SIGTERM node {nd.id}")
        self.crashes += nd.stop()
        nd.killed = True

    def stop_all(self, kill=True):
        """Every node down at once: kill -9 (a crash of every process) or
        SIGTERM to all, then wait (a bad exit is kept for the teardown)."""
        self.log(f"{'kill -9' if kill else 'SIGTERM'} every node")
        live = [nd for nd in self.nodes.values() if nd.alive()]
        for nd in live:
            if nd.paused:
                nd.resume()
            nd.killed = True
            if kill:
                nd.proc.kill()
            else:
                nd.proc.send_signal(signal.SIGTERM)
        for nd in live:
            try:
                nd.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                nd.proc.kill()
                nd.proc.wait()
                self.crashes.append(f"node {nd.id}: did not exit within 15s of SIGTERM")
            if not kill and nd.proc.returncode != 0:
                self.crashes.append(f"node {nd.id}: exit code {nd.proc.returncode} after SIGTERM")

    def start_some(self, nodes):
        """Start the given (stopped) nodes together; returns once each answers PING."""
        self.log(f"start nodes {[nd.id for nd in nodes]}")
        for nd in nodes:
            nd.start()
        for nd in nodes:
            nd.wait_up()

    def pause(self, nd):
        self.log(f"SIGSTOP node {nd.id}")
        nd.pause()

    def resume(self, nd):
        self.log(f"SIGCONT node {nd.id}")
        nd.resume()

    def partition(self, nd):
        """Cut node nd off from every other node (see the module docstring)."""
        self.log(f"partition node {nd.id} from the others ({self.partition_method})")
        if isinstance(self.net, NetnsNet):
            self.net.cut(nd.id)
        else:
            nd.pause()
        nd.partitioned = True

    def heal(self):
        for nd in self.nodes.values():
            if nd.partitioned:
                self.log(f"heal node {nd.id}")
                if isinstance(self.net, NetnsNet):
                    self.net.mend(nd.id)
                elif nd.alive():
                    nd.resume()
                nd.partitioned = False

    def heal_all(self):
        """Undo every fault: links up, paused nodes resumed, dead nodes restarted."""
        self.heal()
        for nd in self.nodes.values():
            if nd.alive() and nd.paused:
                self.resume(nd)
        for nd in self.nodes.values():
            if not nd.alive():
                self.restart(nd)

    def stop(self):
        """Stop everything; returns problems found (exit codes, sanitizer reports)."""
        problems = list(self.crashes)
        try:
            self.heal()
        except Exception as e:  # keep stopping
            problems.append(f"heal at stop: {e}")
        for nd in self.nodes.values():
            if nd.proc is not None and nd.proc.poll() is not None and not nd.killed:
                problems.append(f"node {nd.id}: exited by itself with code {nd.proc.returncode}")
            problems += nd.stop()
        for nd in self.nodes.values():
            problems += nd.sanitizer_problems()
        self.net.teardown()
        return problems

    def _atexit(self):
        """The test process is exiting: leave no node or namespace behind."""
        for nd in self.nodes.values():
            if nd.alive():
                nd.kill9()
        self.net.teardown()

    def all_logs(self, limit=4000):
        return "\n".join(nd.logs(limit) for nd in self.nodes.values())
