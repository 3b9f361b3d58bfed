"""Fixtures for the pier integration suite.

The server under test is chosen by environment variables:

  PIER_TEST_TARGET=redis   run every test against a real `redis-server`
                           (used to validate the tests themselves)
  PIER_SERVER=/path        the pier binary (default: build/asan/pier-server)
  REDIS_SERVER=/path       the redis-server binary (default: from PATH)

Fixtures:
  server        one server per test module (shared; `r` flushes it per test)
  r             redis-py client on `server` (decode_responses=False), db flushed
  fresh_server  a server of its own for one test
  start_server  factory: start_server(*extra_args) -> Server, stopped at teardown
  raw           factory: raw(server=None) -> RawConn on `server` (or the one given)

Teardown of a pier server sends SIGTERM, waits up to 10 s, asserts exit code 0
and that stderr holds no sanitizer report (the log is shown on failure).
"""
import errno
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
TARGET = os.environ.get("PIER_TEST_TARGET", "pier").strip().lower() or "pier"
IS_REDIS = TARGET == "redis"
PIER_BIN = os.environ.get("PIER_SERVER", str(REPO / "build" / "asan" / "pier-server"))
REDIS_BIN = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")

# Tests that only make sense for pier (its documented differences from Redis,
# its own flags). They are skipped ONLY when the suite runs against Redis.
pier_only = pytest.mark.skipif(IS_REDIS, reason="pier-specific behaviour (PIER_TEST_TARGET=redis)")


def pytest_configure(config):
    config.addinivalue_line("markers", "pier_only: pier-specific behaviour, skipped against Redis")


def pytest_report_header(config):
    if IS_REDIS:
        return f"pier integration: target=redis ({REDIS_BIN})"
    return f"pier integration: target=pier ({PIER_BIN})"


# ---------------------------------------------------------------------------
# polling helpers

def wait_for(cond, timeout=5.0, interval=0.01, msg=None):
    """Poll cond() until it returns a truthy value; return that value.
    Fails the test with msg when the timeout passes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = cond()
        except Exception as e:  # the condition may raise while not ready
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {msg or cond}: last={last!r}")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_one_node_cluster(workdir, datadir):
    """A pier node in cluster mode on its own (cluster-nodes with one
    member, data in datadir), started in workdir and serving. Returns the
    Server; its args start it again on the same data."""
    port, bus = free_port(), free_port()
    args = ("--dir", str(datadir), "--appendonly", "yes", "--cluster-node-id", "1",
            "--cluster-nodes", f"1@127.0.0.1:{port}@{bus}")
    srv = Server("pier", workdir, args, port=port).start()
    c = srv.client()
    wait_for(lambda: c.info("cluster").get("cluster_serving") == 1, timeout=15,
             msg="the node to serve")
    return srv


# ---------------------------------------------------------------------------
# RESP parsing of raw bytes

class Incomplete(Exception):
    pass


def _line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete()
    return buf[pos:end], end + 2


def parse_reply(buf, pos=0):
    """Parse one RESP2/RESP3 reply starting at pos.
    Returns (value, new_pos); raises Incomplete if more bytes are needed.
    Values: bytes for simple/bulk strings, RespError for errors, int, None,
    list for arrays/sets/pushes, dict (as list of pairs kept in `Map`) for maps."""
    if pos >= len(buf):
        raise Incomplete()
    t = buf[pos:pos + 1]
    line, nxt = _line(buf, pos + 1)
    if t == b"+":
        return line, nxt
    if t == b"-":
        return RespError(line), nxt
    if t == b":":
        return int(line), nxt
    if t in (b"$", b"=", b"!"):
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise Incomplete()
        data = buf[nxt:nxt + n]
        if buf[nxt + n:nxt + n + 2] != b"\r\n":
            raise ValueError(f"bad bulk terminator at {nxt + n}: {buf[nxt + n:nxt + n + 2]!r}")
        if t == b"!":
            return RespError(data), nxt + n + 2
        return data, nxt + n + 2
    if t in (b"*", b"~", b">"):
        n = int(line)
        if n < 0:
            return None, nxt
        out = []
        for _ in range(n):
            v, nxt = parse_reply(buf, nxt)
            out.append(v)
        return out, nxt
    if t in (b"%", b"|"):
        n = int(line)
        out = Map()
        for _ in range(n):
            k, nxt = parse_reply(buf, nxt)
            v, nxt = parse_reply(buf, nxt)
            out.append((k, v))
        if t == b"|":  # attribute: followed by the real reply
            return parse_reply(buf, nxt)
        return out, nxt
    if t == b"_":
        return None, nxt
    if t == b",":
        return float(line), nxt
    if t == b"#":
        return line == b"t", nxt
    if t == b"(":
        return int(line), nxt
    raise ValueError(f"unknown RESP type byte {t!r} at {pos} in {buf[pos:pos + 60]!r}")


class RespError(bytes):
    pass


class Map(list):
    def get(self, key, default=None):
        for k, v in self:
            if k == key:
                return v
        return default

    def as_dict(self):
        return dict(iter(self))


def encode_command(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        elif isinstance(a, float):
            a = repr(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


class RawConn:
    """A plain TCP connection for byte-exact protocol tests."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def send_tolerant(self, data, timeout=10.0):
        """Send as much of data as the server accepts; a reset/closed connection
        or a timeout ends it without raising. Returns the number of bytes sent."""
        self.sock.settimeout(timeout)
        sent = 0
        view = memoryview(data)
        try:
            while sent < len(data):
                sent += self.sock.send(view[sent:sent + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        return sent

    def cmd(self, *args):
        """Send one command as a multibulk; return its raw reply bytes."""
        self.send(encode_command(*args))
        return self.read_reply_raw()

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("raw read timed out; have %r" % self.buf[:200])
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by server; have %r" % self.buf[:200])
        self.buf += chunk

    def read_reply_raw(self, timeout=None):
        """Bytes of exactly one complete reply."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                _, end = parse_reply(self.buf, 0)
            except Incomplete:
                self._fill(deadline)
                continue
            out, self.buf = self.buf[:end], self.buf[end:]
            return out

    def read_reply(self, timeout=None):
        """One reply, parsed."""
        raw = self.read_reply_raw(timeout)
        return parse_reply(raw, 0)[0]

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_closed(self, timeout=5.0):
        """Read until the server closes the connection.
        Returns (data, closed): closed is False when the timeout passed first."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                data, self.buf = self.buf, b""
                return data, False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError as e:
                if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                    raise
                chunk = b""
            if not chunk:
                data, self.buf = self.buf, b""
                return data, True
            self.buf += chunk

    def is_closed(self, timeout=5.0):
        _, closed = self.read_until_closed(timeout)
        return closed

    def send_slowly(self, data, every=0.3, for_s=3.0):
        """Send data one byte every `every` seconds for `for_s` seconds,
        then the rest at once (a slow client; the pauses are the point)."""
        end = time.monotonic() + for_s
        sent = 0
        while time.monotonic() < end and sent < len(data) - 1:
            self.send(data[sent:sent + 1])
            sent += 1
            time.sleep(every)
        self.send(data[sent:])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# servers

def require_binary(kind):
    """Fail (never skip) with a clear message when a server binary is missing."""
    binary = REDIS_BIN if kind == "redis" else PIER_BIN
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"{kind} server binary not found or not executable: {binary!r} "
                    f"(set PIER_SERVER=/path/to/pier-server or build it with "
                    f"`make build/asan/pier-server`; PIER_TEST_TARGET={TARGET})",
                    pytrace=False)
    return binary

class Server:
    def __init__(self, kind, workdir, extra_args=(), port=None):
        self.kind = kind  # "pier" or "redis"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_args = [str(a) for a in extra_args]
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc = None
        self.stdout_path = self.workdir / f"{kind}-{self.port}.stdout.log"
        self.stderr_path = self.workdir / f"{kind}-{self.port}.stderr.log"
        self.clients = []
        self.returncode = None

    @property
    def is_pier(self):
        return self.kind == "pier"

    def argv(self):
        if self.kind == "redis":
            return [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                    "--loglevel", "warning"] + self.extra_args
        loglevel = [] if "--loglevel" in self.extra_args else ["--loglevel", "normal"]
        # Like the redis argv above: no snapshots unless a test asks (later
        # flags win), so servers do not fork for save rules or write
        # dump.pier at every teardown.
        return [PIER_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""] + \
            loglevel + self.extra_args

    def start(self, timeout=10.0):
        require_binary(self.kind)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, cwd=str(self.workdir), env=env)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.kind} server exited with code {self.proc.returncode} during "
                            f"startup: {' '.join(self.argv())}\n{self.logs()}", pytrace=False)
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.settimeout(1.0)
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    data = b""
                    while b"\r\n" not in data:
                        chunk = s.recv(100)
                        if not chunk:
                            break
                        data += chunk
                    # NOAUTH: up, with requirepass set (tests AUTH themselves).
                    if data.startswith((b"+PONG\r\n", b"-NOAUTH")):
                        return self
                    last = data
            except OSError as e:
                last = e
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        pytest.fail(f"{self.kind} server not answering PING within {timeout}s "
                    f"(last: {last!r})\n{self.logs()}", pytrace=False)

    def logs(self, limit=20000):
        out = []
        for p in (self.stdout_path, self.stderr_path):
            try:
                text = p.read_bytes().decode("utf-8", "replace")
            except OSError:
                text = "<missing>"
            if len(text) > limit:
                text = "...(truncated)...\n" + text[-limit:]
            out.append(f"----- {p.name} -----\n{text}")
        return "\n".join(out)

    def client(self, **kw):
        kw.setdefault("decode_responses", False)
        kw.setdefault("socket_timeout", 15)
        c = redis.Redis(host=self.host, port=self.port, **kw)
        self.clients.append(c)
        return c

    def raw(self, timeout=10.0):
        c = RawConn(self.port, self.host, timeout)
        self.clients.append(c)
        return c

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def stop(self, check=True):
        """SIGTERM and wait; for pier check exit 0 and a clean sanitizer log."""
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        self.clients = []
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_files()
                if check:
                    pytest.fail(f"{self.kind} server did not exit within 10 s of SIGTERM\n"
                                f"{self.logs()}", pytrace=False)
                return
        self.returncode = self.proc.returncode
        self._close_files()
        if not check or self.kind != "pier":
            return
        problems = []
        if self.returncode != 0:
            problems.append(f"exit code {self.returncode} after SIGTERM (expected 0)")
        err = self.stderr_path.read_bytes().decode("utf-8", "replace")
        for m in SANITIZER_MARKERS:
            if m in err:
                problems.append(f"sanitizer report ({m!r}) in stderr")
        if problems:
            pytest.fail("pier server teardown: " + "; ".join(problems) + "\n" + self.logs(),
                        pytrace=False)

    def _close_files(self):
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f:
                f.close()


def target_kind():
    return "redis" if IS_REDIS else "pier"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A real redis-server, the reference of the side-by-side tests."""
    s = Server("redis", tmp_path_factory.mktemp("ref")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(target_kind(), tmp_path_factory.mktemp("srv")).start()
    yield s
    s.stop()


@pytest.fixture
def r(server):
    c = server.client()
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def fresh_server(tmp_path):
    s = Server(target_kind(), tmp_path / "fresh").start()
    yield s
    s.stop()


@pytest.fixture
def start_server(tmp_path):
    """start_server(*extra_args, kind=None) -> started Server; all stopped at teardown."""
    started = []

    def _start(*extra_args, kind=None):
        s = Server(kind or target_kind(), tmp_path / f"s{len(started)}", extra_args).start()
        started.append(s)
        return s

    yield _start
    errors = []
    for s in started:
        try:
            s.stop()
        except BaseException as e:  # stop the others, then report
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def raw(server):
    conns = []

    def _raw(srv=None, timeout=10.0):
        c = RawConn((srv or server).port, timeout=timeout)
        conns.append(c)
        return c

    yield _raw
    for c in conns:
        c.close()


def assert_server_alive(srv, what=""):
    """A PING from a NEW client must succeed and the process must be running."""
    assert srv.alive(), f"server died {what}\n{srv.logs()}"
    c = redis.Redis(host=srv.host, port=srv.port, socket_timeout=10)
    try:
        assert c.ping() is True, f"PING failed {what}"
    finally:
        c.close()


def rawcmd(client, *args):
    """Run a command through redis-py WITHOUT its response callbacks, so the
    reply is what the server sent (b'OK', bulk bytes, ints, None, lists).
    Error replies raise redis.exceptions.ResponseError."""
    conn = client.connection_pool.get_connection(str(args[0]))
    try:
        conn.send_command(*args)
        return conn.read_response()
    except BaseException:
        conn.disconnect()
        raise
    finally:
        client.connection_pool.release(conn)
