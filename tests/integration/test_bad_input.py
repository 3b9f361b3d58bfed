"""Malformed and hostile input. After every case a PING from ANOTHER client
must succeed (and the server process must still be running)."""
import errno
import os
import random
import socket
import time

import pytest

from conftest import IS_REDIS, assert_server_alive, encode_command


def protocol_error_case(server, raw, payload, expected, close_expected=True):
    c = raw()
    c.send_tolerant(payload)
    data, closed = c.read_until_closed(5)
    assert data == expected
    if close_expected:
        assert closed, "connection not closed after a protocol error"
    assert_server_alive(server, f"after {payload[:40]!r}")


# --- truncated frames ------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    b"*", b"*3", b"*3\r", b"*3\r\n", b"*3\r\n$3\r\nSET\r\n$2\r\ntk\r\n$5\r\nhel",
    b"*3\r\n$3\r\nSET\r\n$2\r\ntk\r\n$5", b"*3\r\n$3\r\nSET\r\n$2\r\ntk\r\n$5\r\nhello",
    b"*3\r\n$3\r\nSET\r\n$2\r\ntk\r\n$5\r\nhello\r", b"SET tk inline-without-newline",
    b"$", b"*1\r\n$4\r\nPI",
])
def test_truncated_frame_then_close(server, raw, payload):
    c = raw()
    c.send(payload)
    time.sleep(0.02)
    c.close()
    assert_server_alive(server)
    probe = raw()
    assert probe.cmd("EXISTS", "tk") == b":0\r\n"  # the partial command never ran


def test_truncated_frame_completed_later(raw):
    c = raw()
    c.send(b"*3\r\n$3\r\nSET\r\n$2\r\ntl\r\n$5\r\nhel")
    time.sleep(0.1)
    c.send(b"lo\r\n")
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.cmd("GETDEL", "tl") == b"$5\r\nhello\r\n"


# --- protocol errors -----------------------------------------------------------------

def test_negative_multibulk_count_is_skipped(server, raw):
    c = raw()
    c.send(b"*-5\r\n")
    time.sleep(0.05)
    assert c.cmd("PING") == b"+PONG\r\n"
    assert_server_alive(server)


def test_huge_bulk_length(server, raw):
    protocol_error_case(server, raw, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\n",
                        b"-ERR Protocol error: invalid bulk length\r\n")


def test_bulk_length_over_proto_max_bulk_len(server, raw):
    protocol_error_case(server, raw, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n",
                        b"-ERR Protocol error: invalid bulk length\r\n")


@pytest.mark.parametrize("payload,expected", [
    (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1 \r\n$4\r\nPING\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*+1\r\n$4\r\nPING\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*99999999999\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$-1\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$+4\r\nPING\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$04\r\nPING\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\nX\r\n", b"-ERR Protocol error: expected '$', got 'X'\r\n"),
    (b"*1\r\n:4\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
    (b"*2\r\n$4\r\nECHO\r\n+hi\r\n", b"-ERR Protocol error: expected '$', got '+'\r\n"),
])
def test_malformed_lengths(server, raw, payload, expected):
    protocol_error_case(server, raw, payload, expected)


def test_commands_before_protocol_error_are_answered(server, raw):
    protocol_error_case(server, raw, b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\nX\r\nPING\r\n",
                        b"+PONG\r\n+PONG\r\n-ERR Protocol error: expected '$', got 'X'\r\n")


def test_too_big_inline_request(server, raw):
    protocol_error_case(server, raw, b"a" * (2 * 1024 * 1024),
                        b"-ERR Protocol error: too big inline request\r\n")


def test_too_big_mbulk_count_string(server, raw):
    protocol_error_case(server, raw, b"*" + b"1" * 70000,
                        b"-ERR Protocol error: too big mbulk count string\r\n")


def test_too_big_bulk_count_string(server, raw):
    protocol_error_case(server, raw, b"*1\r\n$" + b"1" * 70000,
                        b"-ERR Protocol error: too big bulk count string\r\n")


def test_unbalanced_quotes(server, raw):
    protocol_error_case(server, raw, b"ECHO 'abc\r\n",
                        b"-ERR Protocol error: unbalanced quotes in request\r\n")


# --- random garbage ------------------------------------------------------------------

def _garbage(rnd, i):
    kind = i % 4
    n = rnd.randint(1, 4096)
    body = bytes(rnd.getrandbits(8) for _ in range(n))
    if kind == 0:
        return body
    if kind == 1:  # multibulk-looking prefix
        return b"*%d\r\n$%d\r\n" % (rnd.randint(-3, 10), rnd.randint(-3, 50)) + body
    if kind == 2:  # valid command with garbage spliced in
        frame = encode_command("SET", "g%d" % i, body[:100])
        cut = rnd.randint(0, len(frame))
        return frame[:cut] + body[:rnd.randint(0, 30)] + frame[cut:]
    # printable garbage with line breaks and quotes (the inline parser)
    alphabet = b"abcXYZ \"'\\\r\n$*:+-0123456789x"
    return bytes(rnd.choice(alphabet) for _ in range(n))


def test_random_garbage_seeded(server, raw):
    rnd = random.Random(20240611)
    for i in range(120):
        c = raw(timeout=5)
        c.send_tolerant(_garbage(rnd, i), timeout=5)
        c.read_until_closed(0.05)
        c.close()
        if i % 10 == 9:
            assert_server_alive(server, f"after garbage case {i}")
    assert_server_alive(server, "after 120 garbage connections")


def test_unknown_command_text(raw):
    c = raw()
    assert c.cmd("foo", "a", "b") == b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
    assert c.cmd("FOO") == b"-ERR unknown command 'FOO', with args beginning with: \r\n"
    c.send(b"foo a b\r\n")
    assert c.read_reply_raw() == b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
    assert c.cmd("PING") == b"+PONG\r\n"


def test_wrong_arity_text(raw):
    c = raw()
    assert c.cmd("GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert c.cmd("get", "a", "b") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert c.cmd("SET", "a") == b"-ERR wrong number of arguments for 'set' command\r\n"
    assert c.cmd("CLIENT", "SETNAME") == b"-ERR wrong number of arguments for 'client|setname' command\r\n"
    assert c.cmd("PING") == b"+PONG\r\n"


# --- a client that writes forever and never reads ----------------------------------

def test_client_that_never_reads(start_server):
    """Pipelined GETs of a 1 MB value, never reading the replies. The server
    must either disconnect the client or stop reading from it (the sender
    blocks), while other clients keep working and memory stays bounded."""
    if IS_REDIS:
        # Redis' default limit for normal clients is unlimited; give it one.
        # (PIER_TEST_REDIS_COBL="normal 0 0 0" shows the test failing without it.)
        srv = start_server("--client-output-buffer-limit", os.environ.get("PIER_TEST_REDIS_COBL", "normal 64mb 32mb 5"))
    else:
        srv = start_server()
    ctl = srv.client()
    value = b"v" * (1024 * 1024)
    ctl.set("big", value)

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.connect((srv.host, srv.port))
    s.setblocking(False)
    chunk = encode_command("GET", "big") * 40000  # ~1 MB of requests = ~40 GB of replies
    outcome, sent = None, 0
    max_rss = 0
    start = time.monotonic()
    deadline = start + 15
    last_progress = start
    last_ping = 0.0
    off = 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now - last_ping > 0.5:
            t0 = time.monotonic()
            assert ctl.ping(), "other client's PING failed during the flood"
            assert time.monotonic() - t0 < 5
            last_ping = now
            rss = srv.rss_kb() or 0
            max_rss = max(max_rss, rss)
            assert max_rss < 3 * 1024 * 1024, \
                f"server RSS reached {max_rss} kB while a client never reads (no output limit?)"
        try:
            n = s.send(chunk[off:])
            sent += n
            off = (off + n) % len(chunk)
            last_progress = time.monotonic()
        except BlockingIOError:
            if time.monotonic() - last_progress > 2.0:
                outcome = "blocked"
                break
            time.sleep(0.01)
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE):
                outcome = "disconnected"
                break
            raise
    assert outcome, (f"after {time.monotonic() - start:.1f}s the never-reading client was neither "
                     f"disconnected nor blocked (sent {sent} bytes of requests; "
                     f"server RSS {max_rss} kB)")
    # other clients still work, with the big value intact
    t0 = time.monotonic()
    assert ctl.ping()
    assert ctl.get("big") == value
    assert time.monotonic() - t0 < 5
    other = srv.raw()
    assert other.cmd("PING") == b"+PONG\r\n"
    assert max_rss < 3 * 1024 * 1024, f"server RSS reached {max_rss} kB"
    s.close()
    assert_server_alive(srv, "after the never-reading client closed")
