"""Pub/sub: RESP2 and RESP3 subscribers, patterns, introspection, delivery
across loop threads, and a subscriber that cannot keep up being
disconnected by its output-buffer limit. Byte-exact replies against Redis
are in test_streams_sbs.py."""
import socket
import time

import pytest
import redis

from conftest import IS_REDIS, RawConn, encode_command, wait_for


def _message(conn, timeout=5.0):
    m = conn.get_message(timeout=timeout)
    deadline = time.monotonic() + timeout
    while m is None and time.monotonic() < deadline:
        m = conn.get_message(timeout=0.1)
    return m


def test_subscribe_publish_resp2(server, r):
    p = server.client().pubsub()
    p.subscribe("news")
    assert _message(p)["type"] == "subscribe"
    assert r.publish("news", "hello") == 1
    m = _message(p)
    assert (m["type"], m["channel"], m["data"]) == ("message", b"news", b"hello")
    p.unsubscribe("news")
    assert _message(p)["type"] == "unsubscribe"
    assert r.publish("news", "nobody") == 0
    p.close()


def test_patterns(server, r):
    p = server.client().pubsub()
    p.psubscribe("user.*", "user.?")
    _message(p), _message(p)
    assert r.publish("user.1", "x") == 2
    got = sorted((m["pattern"], m["channel"], m["data"]) for m in (_message(p), _message(p)))
    assert got == [(b"user.*", b"user.1", b"x"), (b"user.?", b"user.1", b"x")]
    assert r.publish("user.12", "y") == 1
    assert _message(p)["pattern"] == b"user.*"
    assert r.pubsub_numpat() == 2
    p.punsubscribe()
    wait_for(lambda: r.pubsub_numpat() == 0)
    p.close()


def test_resp3_push_and_commands_while_subscribed(server):
    sub = RawConn(server.port)
    assert sub.cmd("HELLO", "3").startswith(b"%")
    assert sub.cmd("SUBSCRIBE", "c") == b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    assert sub.cmd("SET", "k", "v") == b"+OK\r\n"  # RESP3 allows any command
    pub = RawConn(server.port)
    assert pub.cmd("PUBLISH", "c", "m") == b":1\r\n"
    assert sub.read_reply_raw() == b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"
    # a subscriber publishing to itself: the message comes before the reply
    sub.send(encode_command("PUBLISH", "c", "self"))
    assert sub.read_reply_raw() == b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$4\r\nself\r\n"
    assert sub.read_reply_raw() == b":1\r\n"
    sub.close()
    pub.close()


def test_resp2_subscriber_mode_restrictions(server):
    sub = RawConn(server.port)
    sub.cmd("SUBSCRIBE", "c")
    assert sub.cmd("GET", "k").startswith(b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE")
    assert sub.cmd("PING") == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    assert sub.cmd("UNSUBSCRIBE", "c") == b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"
    assert sub.cmd("PING") == b"+PONG\r\n"
    sub.close()


def test_introspection(server, r):
    subs = [server.client().pubsub() for _ in range(3)]
    for i, p in enumerate(subs):
        p.subscribe("shared", f"own{i}")
    wait_for(lambda: r.pubsub_numsub("shared")[0][1] == 3)
    assert sorted(r.pubsub_channels()) == [b"own0", b"own1", b"own2", b"shared"]
    assert sorted(r.pubsub_channels("own*")) == [b"own0", b"own1", b"own2"]
    assert r.pubsub_numsub("own1", "none") == [(b"own1", 1), (b"none", 0)]
    subs[0].close()  # a disconnect drops its subscriptions
    wait_for(lambda: r.pubsub_numsub("shared")[0][1] == 2)
    assert b"own0" not in r.pubsub_channels()
    for p in subs[1:]:
        p.close()


def test_many_subscribers_across_loops(server, r):
    """Enough connections to land on every loop thread: each gets every
    message, in order."""
    conns = [RawConn(server.port) for _ in range(16)]
    for c in conns:
        c.cmd("SUBSCRIBE", "fan")
    for i in range(50):
        assert r.publish("fan", str(i)) == 16
    for c in conns:
        for i in range(50):
            assert c.read_reply_raw().endswith(b"$%d\r\n%d\r\n" % (len(str(i)), i))
        c.close()


def test_slow_subscriber_is_disconnected(start_server):
    srv = start_server("--client-output-buffer-limit", "pubsub 1mb 256kb 60")
    r = srv.client()
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((srv.host, srv.port))
    slow.sendall(encode_command("SUBSCRIBE", "firehose"))
    wait_for(lambda: r.pubsub_numsub("firehose")[0][1] == 1)
    payload = b"x" * 65536
    for _ in range(200):  # 13 MB, far above the limit; the subscriber never reads
        r.publish("firehose", payload)
        if r.pubsub_numsub("firehose")[0][1] == 0:
            break
    wait_for(lambda: r.pubsub_numsub("firehose")[0][1] == 0, timeout=10,
             msg="slow subscriber still subscribed")
    slow.settimeout(10)
    total = 0
    while True:  # drain what was sent before the close; then EOF
        try:
            chunk = slow.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        total += len(chunk)
    assert total < 4 * 1024 * 1024
    assert r.ping()
    slow.close()
