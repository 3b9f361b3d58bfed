"""requirepass, protected mode, rename-command and the connection limits
(maxclients, query buffer, bulk length, output buffers, idle timeout, the
pre-AUTH protocol limits)."""
import os
import shutil
import socket
import subprocess
import time

import pytest
import redis

from conftest import IS_REDIS, encode_command, pier_only, wait_for

PASSWORD = "s3cret-Pa55word-xyz"
NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
DENIED_START = (b"-DENIED Redis is running in protected mode because protected mode is enabled "
                b"and no password is set for the default user.")
DENIED_END = (b"NOTE: You only need to do one of the above things in order for the server to "
              b"start accepting connections from the outside.\r\n")


# ---------------------------------------------------------------------------
# requirepass


def test_requirepass_noauth_wrongpass_auth(start_server):
    s = start_server("--requirepass", PASSWORD)
    c = s.raw()
    assert c.cmd("GET", "k") == NOAUTH
    assert c.cmd("SET", "k", "v") == NOAUTH
    assert c.cmd("AUTH", "wrong") == WRONGPASS
    assert c.cmd("AUTH", PASSWORD[:-1]) == WRONGPASS          # a prefix
    assert c.cmd("AUTH", PASSWORD + "x") == WRONGPASS         # longer
    assert c.cmd("AUTH", "") == WRONGPASS
    assert c.cmd("AUTH", "nobody", PASSWORD) == WRONGPASS
    assert c.cmd("GET", "k") == NOAUTH
    assert c.cmd("AUTH", PASSWORD) == b"+OK\r\n"
    assert c.cmd("SET", "k", "v") == b"+OK\r\n"
    d = s.raw()
    assert d.cmd("AUTH", "default", PASSWORD) == b"+OK\r\n"
    assert d.cmd("GET", "k") == b"$1\r\nv\r\n"
    assert s.client(password=PASSWORD).get("k") == b"v"


def test_config_set_requirepass_reevaluates_like_redis(start_server):
    s = start_server()
    admin = s.raw()
    assert admin.cmd("CONFIG", "SET", "requirepass", PASSWORD) == b"+OK\r\n"
    # The connection that was in before keeps working (as in Redis) ...
    assert admin.cmd("PING") == b"+PONG\r\n"
    # ... a new one must authenticate ...
    late = s.raw()
    assert late.cmd("PING") == NOAUTH
    # ... and clearing the password lets it in without AUTH.
    assert admin.cmd("CONFIG", "SET", "requirepass", "") == b"+OK\r\n"
    assert late.cmd("PING") == b"+PONG\r\n"
    # HELLO checks the connection's own flag (Redis 7.0 does too).
    assert late.cmd("HELLO", "2") == (
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        b"HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
        b"the RESP protocol version at the same time\r\n")
    assert s.raw().cmd("PING") == b"+PONG\r\n"


@pier_only
def test_password_never_shown(start_server):
    s = start_server("--requirepass", PASSWORD, "--loglevel", "verbose")
    r = s.client(password=PASSWORD)
    # pier deliberately hides it (Redis 7 returns it): a fixed marker.
    assert r.config_get("requirepass") == {"requirepass": "<redacted>"}
    assert PASSWORD not in "".join(k + v for k, v in r.config_get("*").items())
    c = s.raw()
    assert c.cmd("AUTH", "not-it") == WRONGPASS
    assert c.cmd("AUTH", PASSWORD) == b"+OK\r\n"
    assert PASSWORD.encode() not in c.cmd("CLIENT", "LIST")
    assert PASSWORD.encode() not in c.cmd("INFO", "everything")
    # Not in the command line either: pier wipes it from its argv.
    with open(f"/proc/{s.proc.pid}/cmdline", "rb") as f:
        assert PASSWORD.encode() not in f.read()
    # Roll-back of a multi-option CONFIG SET restores the real password.
    with pytest.raises(redis.ResponseError):
        r.execute_command("CONFIG", "SET", "requirepass", "other", "maxmemory", "lots")
    assert s.raw().cmd("AUTH", PASSWORD) == b"+OK\r\n"
    r.config_set("requirepass", "")
    assert r.config_get("requirepass") == {"requirepass": ""}
    s.stop()
    logs = s.stdout_path.read_bytes() + s.stderr_path.read_bytes()
    assert PASSWORD.encode() not in logs


def test_bad_password_flag_is_not_echoed(tmp_path):
    if IS_REDIS:
        pytest.skip("pier's own start-up message")
    from conftest import PIER_BIN
    long_pw = "Q" * 600  # over the 511-byte limit
    p = subprocess.run([PIER_BIN, "--port", "0", "--requirepass", long_pw],
                       capture_output=True, timeout=20)
    assert p.returncode == 2
    assert long_pw.encode() not in p.stdout + p.stderr
    assert b"requirepass" in p.stderr


def test_unauthenticated_protocol_limits(start_server):
    s = start_server("--requirepass", PASSWORD)
    c = s.raw()
    c.send(b"*11\r\n")
    data, closed = c.read_until_closed()
    assert data == b"-ERR Protocol error: unauthenticated multibulk length\r\n" and closed
    c = s.raw()
    c.send(b"*2\r\n$3\r\nGET\r\n$16385\r\n")
    data, closed = c.read_until_closed()
    assert data == b"-ERR Protocol error: unauthenticated bulk length\r\n" and closed
    # Within the limits: a normal NOAUTH; after AUTH the limits are gone.
    c = s.raw()
    assert c.cmd("SET", "k", "x" * 16384) == NOAUTH
    assert c.cmd("AUTH", PASSWORD) == b"+OK\r\n"
    assert c.cmd("MSET", *["a", "1"] * 6) == b"+OK\r\n"
    assert c.cmd("SET", "k", "x" * 100000) == b"+OK\r\n"


def test_no_preauth_limits_without_password(server, raw):
    c = raw()
    assert c.cmd("MSET", *["a", "1"] * 6) == b"+OK\r\n"
    assert c.cmd("SET", "big", "x" * 100000) == b"+OK\r\n"


# ---------------------------------------------------------------------------
# protected mode


def _ns_cmd(ns, *argv):
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, timeout=20)


class NonLoopbackPeer:
    """A client address that is not loopback: a network namespace joined by
    a veth pair (root + `ip netns`), else this host's own non-loopback
    address (the kernel then uses it as the source)."""

    def __init__(self):
        self.ns = None
        tag = os.getpid() % 200 + 10
        self.server_ip, self.client_ip = f"10.213.{tag}.1", f"10.213.{tag}.2"
        if os.geteuid() == 0 and shutil.which("ip"):
            ns, host_if, ns_if = f"piert{os.getpid()}", f"pvh{os.getpid()}", f"pvn{os.getpid()}"
            cmds = [["ip", "netns", "add", ns],
                    ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
                    ["ip", "link", "set", ns_if, "netns", ns],
                    ["ip", "addr", "add", f"{self.server_ip}/30", "dev", host_if],
                    ["ip", "link", "set", host_if, "up"],
                    ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.client_ip}/30",
                     "dev", ns_if],
                    ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
                    ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]]
            self.ns, self.host_if = ns, host_if
            for c in cmds:
                if subprocess.run(c, capture_output=True).returncode != 0:
                    self.close()
                    break
        if self.ns is None:
            self.server_ip = self.client_ip = self._local_address()

    @staticmethod
    def _local_address():
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.connect(("192.0.2.1", 9))  # no packet is sent
                ip = u.getsockname()[0]
        except OSError:
            return None
        return None if ip.startswith("127.") else ip

    def exchange(self, port, payload, timeout=5.0):
        """Connect from the non-loopback address; unless the server speaks
        (and closes) first, send payload; return all bytes until the server
        closes (or the timeout). Nothing is sent to a refusing server, so
        its close cannot turn into a reset that loses the message."""
        code = ("import socket,sys\n"
                f"s=socket.create_connection(('{self.server_ip}',{port}),timeout=0.5)\n"
                "d=b''\n"
                "def drain():\n"
                "    global d\n"
                "    try:\n"
                "        while True:\n"
                "            c=s.recv(65536)\n"
                "            if not c: return True\n"
                "            d+=c\n"
                "    except (socket.timeout, ConnectionResetError): return False\n"
                "if not drain() and not d:\n"
                f"    s.settimeout({timeout})\n"
                f"    s.sendall({payload!r})\n"
                "    drain()\n"
                "sys.stdout.buffer.write(d)\n")
        argv = ["/usr/bin/python3", "-c", code]
        if self.ns:
            p = _ns_cmd(self.ns, *argv)
        else:
            p = subprocess.run(argv, capture_output=True, timeout=20)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def close(self):
        if self.ns:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
            self.ns = None


@pytest.fixture
def peer():
    p = NonLoopbackPeer()
    if p.server_ip is None:
        pytest.skip("no network namespace support and no non-loopback address")
    yield p
    p.close()


def test_protected_mode_denies_non_loopback(start_server, peer):
    s = start_server("--bind", "127.0.0.1", peer.server_ip)
    data = peer.exchange(s.port, encode_command("PING"))
    assert data.startswith(DENIED_START) and data.endswith(DENIED_END), data[:200]
    # Loopback is unaffected.
    assert s.raw().cmd("PING") == b"+PONG\r\n"
    # With a password set the remote client is let in (and must AUTH).
    s.client().config_set("requirepass", PASSWORD)
    assert peer.exchange(s.port, encode_command("PING"), timeout=1.0) == NOAUTH
    s.client(password=PASSWORD).config_set("requirepass", "")
    # protected-mode no: served normally.
    s.client().config_set("protected-mode", "no")
    assert peer.exchange(s.port, encode_command("PING"), timeout=1.0) == b"+PONG\r\n"


def test_protected_mode_config(server):
    r = server.client()
    assert r.config_get("protected-mode") == {"protected-mode": "yes"}
    with pytest.raises(redis.ResponseError, match="argument must be 'yes' or 'no'"):
        r.config_set("protected-mode", "maybe")


# ---------------------------------------------------------------------------
# rename-command


def test_rename_command_flags(start_server):
    s = start_server("--rename-command", "flushall", "", "--rename-command", "set", "put")
    c = s.raw()
    assert c.cmd("FLUSHALL") == (b"-ERR unknown command 'FLUSHALL', with args beginning with: "
                                 b"\r\n")
    assert c.cmd("SET", "k", "v").startswith(b"-ERR unknown command 'SET'")
    assert c.cmd("PUT", "k", "v") == b"+OK\r\n"
    assert c.cmd("put", "k2", "v") == b"+OK\r\n"
    assert c.cmd("GET", "k") == b"$1\r\nv\r\n"
    with pytest.raises(redis.ResponseError, match="Unknown option"):
        s.client().config_set("rename-command", "get x")


def test_rename_command_config_file(start_server, tmp_path):
    conf = tmp_path / "renames.conf"
    conf.write_text('rename-command GET fetch\nrename-command DEL ""\n')
    if IS_REDIS:
        pytest.skip("a config file as first argument: covered by the flags test")
    from conftest import Server, PIER_BIN  # noqa: F401

    class ConfServer(Server):
        def argv(self):
            return [PIER_BIN, str(conf), "--port", str(self.port), "--bind", "127.0.0.1"]

    s = ConfServer("pier", tmp_path / "conf")
    s.start()
    try:
        c = s.raw()
        assert c.cmd("SET", "k", "v") == b"+OK\r\n"
        assert c.cmd("FETCH", "k") == b"$1\r\nv\r\n"
        assert c.cmd("GET", "k").startswith(b"-ERR unknown command 'GET'")
        assert c.cmd("DEL", "k").startswith(b"-ERR unknown command 'DEL'")
    finally:
        s.stop()


@pier_only
def test_rename_command_unknown_fails_startup(tmp_path):
    from conftest import PIER_BIN
    p = subprocess.run([PIER_BIN, "--port", "0", "--rename-command", "nosuchcmd", "x"],
                       capture_output=True, timeout=20)
    assert p.returncode != 0
    assert b"No such command in rename-command" in p.stderr


# ---------------------------------------------------------------------------
# limits


def test_maxclients(start_server):
    s = start_server("--maxclients", "3")
    first = s.raw()
    # The start-up probe's connection may not be reaped yet: wait for it.
    wait_for(lambda: b"connected_clients:1\r\n" in first.cmd("INFO", "clients"))
    conns = [first, s.raw(), s.raw()]
    for c in conns:
        assert c.cmd("PING") == b"+PONG\r\n"
    extra = s.raw()
    data, closed = extra.read_until_closed()
    assert data == b"-ERR max number of clients reached\r\n" and closed
    conns[0].close()
    wait_for(lambda: s.raw().cmd("PING") == b"+PONG\r\n", msg="a freed slot")


def test_query_buffer_limit_closes_client(start_server):
    s = start_server("--client-query-buffer-limit", "1mb")
    c = s.raw()
    # An unfinished 8 MB bulk: the buffer passes 1 MB and the client goes.
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8000000\r\n")
    c.send_tolerant(b"x" * 3_000_000)
    _, closed = c.read_until_closed(timeout=10)
    assert closed
    assert s.raw().cmd("PING") == b"+PONG\r\n"


def test_proto_max_bulk_len(start_server):
    s = start_server("--proto-max-bulk-len", "1mb")
    c = s.raw()
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
    data, closed = c.read_until_closed()
    assert data == b"-ERR Protocol error: invalid bulk length\r\n" and closed
    assert s.raw().cmd("SET", "k", "x" * 1048576) == b"+OK\r\n"


def test_output_buffer_hard_limit(start_server):
    s = start_server("--client-output-buffer-limit", "normal", "1mb", "0", "0")
    s.client().set("big", b"x" * (3 * 1024 * 1024))
    c = s.raw()
    c.send(encode_command("GET", "big"))
    data, closed = c.read_until_closed(timeout=10)
    assert closed and len(data) < 3 * 1024 * 1024
    assert s.raw().cmd("PING") == b"+PONG\r\n"


def test_output_buffer_soft_limit(start_server):
    s = start_server("--client-output-buffer-limit", "normal", "0", "256kb", "1")
    s.client().set("v", b"x" * 100_000)
    c = s.raw()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    burst = encode_command("GET", "v") * 200  # 20 MB of replies, never read
    c.send_tolerant(burst, timeout=2)
    time.sleep(2.5)
    c.send_tolerant(encode_command("GET", "v") * 5, timeout=2)  # Redis checks on output
    deadline = time.monotonic() + 10
    closed = False
    while time.monotonic() < deadline and not closed:
        _, closed = c.read_until_closed(timeout=1)
    assert closed


def test_output_buffer_soft_limit_tolerates_short_bursts(start_server):
    s = start_server("--client-output-buffer-limit", "normal", "0", "256kb", "5")
    s.client().set("v", b"x" * 100_000)
    c = s.raw()
    c.send(encode_command("GET", "v") * 10)  # 1 MB at once, read promptly
    for _ in range(10):
        assert len(c.read_reply_raw()) > 100_000
    assert c.cmd("PING") == b"+PONG\r\n"


def test_client_output_buffer_limit_config(server):
    r = server.client()
    r.config_set("client-output-buffer-limit", "normal 1mb 512kb 7 pubsub 64mb 16mb 90")
    got = r.config_get("client-output-buffer-limit")["client-output-buffer-limit"].split()
    assert got[:4] == ["normal", "1048576", "524288", "7"]
    i = got.index("pubsub")
    assert got[i + 1:i + 4] == ["67108864", "16777216", "90"]
    r.config_set("client-output-buffer-limit", "normal 0 0 0")


def test_idle_timeout(start_server):
    s = start_server("--timeout", "1")
    c = s.raw()
    assert c.cmd("PING") == b"+PONG\r\n"
    _, closed = c.read_until_closed(timeout=6)
    assert closed
    busy = s.raw()
    for _ in range(4):  # an active client is not idle
        assert busy.cmd("PING") == b"+PONG\r\n"
        time.sleep(0.5)


@pier_only
def test_renamed_command_replays_from_aof(tmp_path):
    """The AOF logs a command under its own name; replay finds it even
    though only the new name answers clients."""
    from conftest import Server
    args = ("--appendonly", "yes", "--dir", str(tmp_path / "data"),
            "--rename-command", "set", "put")
    (tmp_path / "data").mkdir()
    s = Server("pier", tmp_path / "a", args).start()
    assert s.raw().cmd("PUT", "k", "v") == b"+OK\r\n"
    s.stop()
    s2 = Server("pier", tmp_path / "b", args).start()
    try:
        assert s2.raw().cmd("GET", "k") == b"$1\r\nv\r\n"
    finally:
        s2.stop()


# ---------------------------------------------------------------------------
# cross-protocol scripting and AUTH guessing (issue 12, items 3 and 4)

ATTACK_LINE = b"Possible SECURITY ATTACK detected"


def _server_log(s):
    return s.stdout_path.read_bytes() + s.stderr_path.read_bytes()


def test_http_post_closes_the_connection(start_server):
    """A web page can make a browser POST to 127.0.0.1:<port>; the body
    `SET xproto_pwned 1` must never run: the `POST` line closes the
    connection, without a reply, as in Redis."""
    s = start_server()  # no password: the case the attack targets
    body = b"SET xproto_pwned 1\r\n"
    c = s.raw()
    c.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body) + body)
    data, closed = c.read_until_closed()
    assert closed and data == b""
    assert s.client().exists("xproto_pwned") == 0
    wait_for(lambda: ATTACK_LINE in _server_log(s), msg="the security warning in the log")


def test_http_host_header_closes_the_connection(start_server):
    """A GET request line is a (failing) GET; the `Host:` header after it
    closes the connection before the body runs. As in Redis, the
    connection is dropped at once: replies still queued are not sent."""
    s = start_server()
    c = s.raw()
    c.send(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\nSET xproto_pwned 1\r\n")
    data, closed = c.read_until_closed()
    assert closed and data == b""
    assert s.client().exists("xproto_pwned") == 0
    # in any case, inside a pipeline
    c = s.raw()
    c.send(encode_command("PING") + b"host: x\r\n" + encode_command("SET", "xproto_pwned", "1"))
    data, closed = c.read_until_closed()
    assert closed and data == b""
    assert s.client().exists("xproto_pwned") == 0


def test_http_lines_are_not_listed_as_commands(server):
    c = server.raw()
    assert c.cmd("COMMAND", "INFO", "post", "host:") == b"*2\r\n$-1\r\n$-1\r\n"
    assert b"$5\r\nhost:\r\n" not in c.cmd("COMMAND", "LIST")


@pier_only
def test_pipelined_auth_guessing_is_cut_off(start_server):
    """100 wrong AUTHs in one write: the connection is closed after the
    10th failure, nothing behind it runs (not even a right AUTH), and the
    peer's address is logged."""
    s = start_server("--requirepass", PASSWORD)
    c = s.raw()
    c.send(encode_command("AUTH", "guess") * 100 + encode_command("AUTH", PASSWORD) +
           encode_command("SET", "guessed", "1"))
    data, closed = c.read_until_closed()
    assert closed
    assert data == WRONGPASS * 10
    assert s.client(password=PASSWORD).exists("guessed") == 0
    log = wait_for(lambda: (lambda t: t if b"failed AUTH" in t else None)(_server_log(s)),
                   msg="the failed-AUTH line in the log")
    line = next(ln for ln in log.splitlines() if b"failed AUTH" in ln)
    assert b"127.0.0.1:" in line and PASSWORD.encode() not in log
    # HELLO ... AUTH counts too; a connection under the limit is unaffected.
    c = s.raw()
    c.send(encode_command("HELLO", "3", "AUTH", "default", "guess") * 12)
    data, closed = c.read_until_closed()
    assert closed and data.count(b"WRONGPASS") == 10
    ok = s.raw()
    for _ in range(9):
        assert ok.cmd("AUTH", "guess") == WRONGPASS
    assert ok.cmd("AUTH", PASSWORD) == b"+OK\r\n"
    assert ok.cmd("PING") == b"+PONG\r\n"


@pier_only
def test_http_post_and_auth_guessing_with_connection_threads(start_server):
    s = start_server("--io", "thread", "--requirepass", PASSWORD)
    c = s.raw()
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n" + encode_command("AUTH", PASSWORD) +
           encode_command("SET", "xproto_pwned", "1"))
    data, closed = c.read_until_closed()
    assert closed and data == b""
    c = s.raw()
    c.send(encode_command("AUTH", "guess") * 20 + encode_command("AUTH", PASSWORD) +
           encode_command("SET", "xproto_pwned", "1"))
    data, closed = c.read_until_closed()
    assert closed and data == WRONGPASS * 10
    assert s.client(password=PASSWORD).exists("xproto_pwned") == 0
