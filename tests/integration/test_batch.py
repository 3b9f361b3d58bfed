"""The batch protocol port (docs/PROTOCOL.md, version 1): publishers,
subscribers, exactly-once, errors, auth, persistence.

A small client implementation of the protocol lives here (struct only;
LZ4 and zstd through python3-lz4 / python3-zstandard when installed) so
the tests exercise the wire format byte for byte, independently of
libpier."""
import socket
import struct
import time

import pytest

from conftest import IS_REDIS, assert_server_alive, free_port, wait_for

pytestmark = pytest.mark.skipif(IS_REDIS, reason="pier's batch protocol")

try:
    import lz4.block as lz4block
except ImportError:  # pragma: no cover
    lz4block = None
try:
    import zstandard
except ImportError:  # pragma: no cover
    zstandard = None

BATCH, ACK, ERROR, HELLO_OK = 1, 2, 3, 4
RAW, LZ4, ZSTD = 0, 1, 2
PUB, SUB = 1, 2
DUPLICATE = 1

# ---- CRC-32C (Castagnoli), table-driven ----
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def handshake(role, topic, *, ack=1, order=1, codecs=0, client_id=0, token=b"", start=b"",
              magic=b"PIRB", version=1, topic_len=None):
    topic = topic.encode() if isinstance(topic, str) else topic
    fixed = struct.pack("<4sHBBBBHQHHHH", magic, version, role, ack, order, codecs, 0,
                        client_id, len(token), len(topic) if topic_len is None else topic_len,
                        len(start), 0)
    assert len(fixed) == 28
    return fixed + token + topic + start


def header(ftype, seq, count, raw_len, payload_len, crc, codec=RAW, flags=0, magic=b"PIRF",
           version=1):
    h = struct.pack("<4sBBBBQIIII", magic, version, ftype, codec, flags, seq, count, raw_len,
                    payload_len, crc)
    assert len(h) == 32
    return h


def raw_payload(messages):
    return b"".join(struct.pack("<I", len(m)) + m for m in messages)


def batch_frame(seq, messages, codec=RAW):
    raw = raw_payload(messages)
    if codec == LZ4:
        wire = lz4block.compress(raw, store_size=False)
    elif codec == ZSTD:
        wire = zstandard.ZstdCompressor().compress(raw)
    else:
        wire = raw
    return header(BATCH, seq, len(messages), len(raw), len(wire), crc32c(wire), codec) + wire


class Frame:
    def __init__(self, hdr, payload):
        (self.magic, self.version, self.type, self.codec, self.flags, self.seq, self.count,
         self.raw_len, self.payload_len, self.crc) = struct.unpack("<4sBBBBQIIII", hdr)
        self.payload = payload

    @property
    def error_code(self):
        assert self.type == ERROR, f"expected ERROR, got type {self.type}"
        return struct.unpack("<H", self.payload[:2])[0]

    def entries(self):
        """Subscriber BATCH payload -> [(ms, seq, kind, bytes)]."""
        out, pos, p = [], 0, self.payload
        while pos < len(p):
            ms, sq, kind, n = struct.unpack_from("<QQBI", p, pos)
            pos += 21
            out.append((ms, sq, kind, p[pos:pos + n]))
            pos += n
        assert len(out) == self.count
        return out


class BatchConn:
    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError("server closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        hdr = self._read(32)
        f = Frame(hdr, b"")
        assert f.magic == b"PIRF" and f.version == 1
        f.payload = self._read(f.payload_len)
        assert crc32c(f.payload) == f.crc
        return f

    def expect_error(self):
        f = self.frame()
        code = f.error_code
        # then the server closes
        self.sock.settimeout(5)
        rest = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        assert rest == b"", "data after the ERROR frame"
        return code

    def closed(self, timeout=5):
        """True when the server closed the connection (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def hello(conn):
    f = conn.frame()
    assert f.type == HELLO_OK, f"expected HELLO_OK, got {f.type} {f.payload!r}"
    (maxb,) = struct.unpack("<Q", f.payload)
    assert maxb > 0
    return f.seq


def publisher(port, topic, **kw):
    c = BatchConn(port)
    c.send(handshake(PUB, topic, **kw))
    return c, hello(c)


def subscriber(port, topic, start=b"0", **kw):
    c = BatchConn(port)
    c.send(handshake(SUB, topic, start=start, **kw))
    hello(c)
    return c


def ack_of(conn):
    f = conn.frame()
    assert f.type == ACK, f"expected ACK, got type {f.type}: {f.payload!r}"
    if f.flags & DUPLICATE:
        assert f.payload == b""
        return f, None
    return f, struct.unpack("<QQ", f.payload)


@pytest.fixture(scope="module")
def bsrv(tmp_path_factory):
    from conftest import Server
    bport = free_port()
    s = Server("pier", tmp_path_factory.mktemp("batch"),
               ["--batch-port", bport, "--threads", "2"]).start()
    s.bport = bport
    yield s
    s.stop()


@pytest.fixture
def r(bsrv):
    c = bsrv.client()
    c.flushall()
    yield c
    c.close()


def start_batch_server(start_server, *args):
    bport = free_port()
    s = start_server("--batch-port", bport, *args)
    s.bport = bport
    return s


def xrange_data(r, key):
    return [(i, f) for i, f in r.xrange(key)]


# ---------------------------------------------------------------- publish

def test_publish_sizes_read_back_with_xrange(bsrv, r):
    sizes = [1, 2, 100, 4096, 65536, 1 << 20]
    msgs = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    c, nxt = publisher(bsrv.bport, "ev", client_id=0)
    assert nxt == 1
    c.send(batch_frame(1, msgs[:3]) + batch_frame(2, msgs[3:5]) + batch_frame(3, msgs[5:]))
    firsts = []
    for seq, count in ((1, 3), (2, 2), (3, 1)):
        f, first = ack_of(c)
        assert (f.seq, f.count) == (seq, count)
        firsts.append(first)
    entries = r.xrange("ev")
    assert len(entries) == len(msgs)
    for (eid, fields), m in zip(entries, msgs):
        assert fields == {b"data": m}
    ids = [tuple(map(int, e[0].split(b"-"))) for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # each batch: consecutive sequence numbers from its ACK's first ID
    assert ids[0] == firsts[0] and ids[1] == (firsts[0][0], firsts[0][1] + 1)
    assert ids[3] == firsts[1] and ids[4] == (firsts[1][0], firsts[1][1] + 1)
    assert ids[5] == firsts[2]
    c.close()


def test_ids_follow_xadd_in_the_same_millisecond(bsrv, r):
    far = 99999999999999  # a last ID in the future: the batch continues its ms
    r.xadd("fut", {"a": "1"}, id=f"{far}-5")
    c, _ = publisher(bsrv.bport, "fut")
    c.send(batch_frame(1, [b"x", b"y", b"z"]))
    _, first = ack_of(c)
    assert first == (far, 6)
    ids = [e[0] for e in r.xrange("fut")]
    assert ids == [f"{far}-{s}".encode() for s in (5, 6, 7, 8)]
    assert r.xinfo_stream("fut")["entries-added"] == 4
    c.close()


@pytest.mark.skipif(lz4block is None or zstandard is None, reason="python3-lz4/zstandard")
def test_lz4_and_zstd_batches(bsrv, r):
    msgs = [b"hello world " * 100, b"", b"x" * 70000, bytes(range(256)) * 10]
    c, _ = publisher(bsrv.bport, "cz")
    c.send(batch_frame(1, msgs, LZ4) + batch_frame(2, msgs, ZSTD) + batch_frame(3, msgs))
    for seq in (1, 2, 3):
        f, _ = ack_of(c)
        assert f.seq == seq
    got = [fields[b"data"] for _, fields in r.xrange("cz")]
    assert got == msgs * 3
    c.close()


def test_ack_level_0_sends_no_acks(bsrv, r):
    c, _ = publisher(bsrv.bport, "a0", ack=0)
    c.send(b"".join(batch_frame(s, [b"m%d" % s]) for s in range(1, 51)))
    wait_for(lambda: r.xlen("a0") == 50)
    c.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        c.sock.recv(1)
    c.close()


def test_many_pipelined_batches_with_fsync_always(start_server):
    s = start_batch_server(start_server, "--appendonly", "yes", "--appendfsync", "always")
    c, _ = publisher(s.bport, "fs", client_id=5)
    n = 200
    c.send(b"".join(batch_frame(q, [b"v%d" % q] * 10) for q in range(1, n + 1)))
    for q in range(1, n + 1):
        f, _ = ack_of(c)
        assert f.seq == q
    assert s.client().xlen("fs") == 10 * n
    c.close()


def test_batch_wakes_blocked_xread_and_xreadgroup(bsrv, r):
    import threading
    r.xgroup_create("wk", "g", id="$", mkstream=True)
    results = {}

    def xread():
        results["xread"] = bsrv.client().xread({"wk": "$"}, block=10000)

    def xreadgroup():
        results["group"] = bsrv.client().xreadgroup("g", "c1", {"wk": ">"}, block=10000)

    threads = [threading.Thread(target=xread), threading.Thread(target=xreadgroup)]
    for t in threads:
        t.start()
    wait_for(lambda: {c["cmd"] for c in r.client_list()} >= {"xread", "xreadgroup"},
             timeout=10)
    c, _ = publisher(bsrv.bport, "wk")
    c.send(batch_frame(1, [b"wake", b"up"]))
    ack_of(c)
    for t in threads:
        t.join(10)
    assert [f[b"data"] for _, f in results["xread"][0][1]] == [b"wake", b"up"]
    assert [f[b"data"] for _, f in results["group"][0][1]] == [b"wake", b"up"]
    c.close()


# ---------------------------------------------------------------- subscribe

def test_subscriber_from_0_gets_everything_in_order(bsrv, r):
    r.xadd("mix", {"data": "first"})
    r.xadd("mix", {"a": "1", "b": "2"})
    sub = subscriber(bsrv.bport, "mix", b"0")
    c, _ = publisher(bsrv.bport, "mix")
    c.send(batch_frame(1, [b"p1", b"p2"]))
    ack_of(c)
    r.xadd("mix", {"data": "last"})
    got = []
    while len(got) < 5:
        f = sub.frame()
        assert f.type == BATCH
        got += f.entries()
    want = [(tuple(map(int, e.split(b"-"))), fl) for e, fl in r.xrange("mix")]
    assert [(g[0], g[1]) for g in got] == [w[0] for w in want]
    assert [g[2] for g in got] == [0, 1, 0, 0, 0]
    assert got[0][3] == b"first" and got[2][3] == b"p1" and got[4][3] == b"last"
    assert got[1][3] == b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
    sub.close()
    c.close()


def test_subscriber_from_dollar_and_from_id(bsrv, r):
    for i in range(5):
        r.xadd("dl", {"data": str(i)}, id=f"1-{i + 1}")
    sub = subscriber(bsrv.bport, "dl", b"$")
    from_id = subscriber(bsrv.bport, "dl", b"1-3")
    f = from_id.frame()
    assert [e[3] for e in f.entries()] == [b"3", b"4"]
    # nothing for $ until something new arrives (from another connection,
    # possibly another loop)
    sub.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sub.sock.recv(1)
    sub.sock.settimeout(10)
    r.xadd("dl", {"data": "new"})
    f = sub.frame()
    assert [e[3] for e in f.entries()] == [b"new"]
    f = from_id.frame()
    assert [e[3] for e in f.entries()] == [b"new"]
    sub.close()
    from_id.close()


def test_subscriber_large_backlog_in_frames(bsrv, r):
    c, _ = publisher(bsrv.bport, "big")
    msg = b"z" * 100000
    c.send(b"".join(batch_frame(q, [msg] * 10) for q in range(1, 11)))  # 10 MB
    for _ in range(10):
        ack_of(c)
    sub = subscriber(bsrv.bport, "big", b"0")
    total, frames, last = 0, 0, None
    while total < 100:
        f = sub.frame()
        assert f.payload_len <= 2 * 1024 * 1024 + 100000 + 21
        frames += 1
        for ms, sq, kind, data in f.entries():
            assert data == msg and kind == 0
            assert last is None or (ms, sq) > last
            last = (ms, sq)
            total += 1
        assert f.seq == frames
    assert frames >= 5
    info = r.info("batch")
    assert info["batch_messages_out"] >= 100
    sub.close()
    c.close()


def test_subscriber_small_socket_buffer_gets_every_frame(bsrv, r):
    """Frames that the socket takes in pieces (a tiny receive buffer) are
    followed by the next ones whichever path finishes writing them."""
    c, _ = publisher(bsrv.bport, "tiny")
    c.send(b"".join(batch_frame(q, [b"%05d" % q * 20000] * 4) for q in range(1, 31)))
    for _ in range(30):
        ack_of(c)
    sub = BatchConn.__new__(BatchConn)
    sub.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.sock.settimeout(10)
    sub.sock.connect(("127.0.0.1", bsrv.bport))
    sub.buf = b""
    sub.send(handshake(SUB, "tiny", start=b"0"))
    hello(sub)
    n = 0
    while n < 120:
        n += len(sub.frame().entries())
    assert n == 120
    sub.close()
    c.close()


def test_subscriber_many_writers_no_loss(bsrv, r):
    sub = subscriber(bsrv.bport, "race", b"$")
    pubs = [publisher(bsrv.bport, "race")[0] for _ in range(3)]
    for round_ in range(20):
        for i, p in enumerate(pubs):
            p.send(batch_frame(round_ + 1, [b"%d-%d" % (i, round_)] * 3))
        r.xadd("race", {"data": "x"})
    for p in pubs:
        for _ in range(20):
            ack_of(p)
    got = []
    while len(got) < 20 * 3 * 3 + 20:
        got += sub.frame().entries()
    ids = [(e[0], e[1]) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == r.xlen("race")
    for p in pubs:
        p.close()
    sub.close()


# ---------------------------------------------------------------- exactly-once

def test_exactly_once_across_reconnect(bsrv, r):
    cid = 0xDEADBEEF12345678
    c, nxt = publisher(bsrv.bport, "eo", client_id=cid)
    assert nxt == 1
    c.send(b"".join(batch_frame(q, [b"b%d-%d" % (q, k) for k in range(3)]) for q in (1, 2, 3)))
    for _ in range(3):
        ack_of(c)
    c.close()
    c, nxt = publisher(bsrv.bport, "eo", client_id=cid)
    assert nxt == 4
    # resend the last two (the publisher did not see their ACKs), then new
    c.send(batch_frame(2, [b"dup"] * 3) + batch_frame(3, [b"dup"] * 3) + batch_frame(4, [b"b4"]))
    # ACK seq is cumulative: the highest appended so far (3) for both
    f, first = ack_of(c)
    assert f.flags & DUPLICATE and f.seq == 3 and f.count == 3 and first is None
    f, first = ack_of(c)
    assert f.flags & DUPLICATE and f.seq == 3
    f, first = ack_of(c)
    assert not f.flags & DUPLICATE and f.seq == 4 and first is not None
    data = [fl[b"data"] for _, fl in r.xrange("eo")]
    assert data == [b"b%d-%d" % (q, k) for q in (1, 2, 3) for k in range(3)] + [b"b4"]
    assert r.info("batch")["batch_duplicates"] >= 2
    # another client id on the same stream has its own sequence
    c2, nxt2 = publisher(bsrv.bport, "eo", client_id=7)
    assert nxt2 == 1
    c.close()
    c2.close()


def test_seq_0_with_client_id_is_error_4(bsrv, r):
    c, _ = publisher(bsrv.bport, "z0", client_id=42)
    c.send(batch_frame(0, [b"a"]))
    assert c.expect_error() == 4


def test_xbatchadd_over_resp(bsrv, r):
    """The AOF's record form also works as a command (replay runs it)."""
    payload = raw_payload([b"one", b"two"])
    reply = r.execute_command("XBATCHADD", "rb", 5, 1, "7-1", payload)
    assert reply == [b"7-1", 2, 0]
    assert r.execute_command("XBATCHADD", "rb", 5, 1, "*", payload) == [None, 2, 1]
    with pytest.raises(Exception, match="sequence gap"):
        r.execute_command("XBATCHADD", "rb", 5, 3, "*", payload)
    with pytest.raises(Exception, match="malformed"):
        r.execute_command("XBATCHADD", "rb", 5, 2, "*", b"\x09\0\0\0x")
    assert [e[0] for e in r.xrange("rb")] == [b"7-1", b"7-2"]


def test_gap_is_error_9(bsrv, r):
    c, _ = publisher(bsrv.bport, "gap", client_id=42)
    c.send(batch_frame(1, [b"a"]))
    ack_of(c)
    c.send(batch_frame(3, [b"c"]))
    assert c.expect_error() == 9
    assert r.xlen("gap") == 1
    assert_server_alive(bsrv, "after a gap")


# ---------------------------------------------------------------- errors

def _hs_ok(topic="bad"):
    return handshake(PUB, topic)


def _hdr(**kw):
    d = dict(ftype=BATCH, seq=1, count=1, raw_len=5, payload_len=5, crc=crc32c(b"\x01\0\0\0x"))
    d.update(kw)
    return header(**d)


GOOD_PAYLOAD = b"\x01\0\0\0x"

MALFORMED = [
    ("handshake-magic", handshake(PUB, "t", magic=b"XXXX"), 1),
    ("handshake-version", handshake(PUB, "t", version=2), 2),
    ("handshake-role", handshake(3, "t"), 4),
    ("handshake-topic-empty", handshake(PUB, ""), 4),
    ("handshake-topic-too-long", handshake(PUB, "t" * 1025), 4),
    ("handshake-publisher-start", handshake(PUB, "t", start=b"0"), 4),
    ("handshake-start-too-long", handshake(SUB, "t", start=b"1" * 65), 4),
    ("handshake-ack-2", handshake(PUB, "t", ack=2), 8),
    ("handshake-order-3", handshake(PUB, "t", order=3), 8),
    ("subscriber-bad-start", handshake(SUB, "t", start=b"abc"), 4),
    ("frame-magic", _hs_ok() + _hdr(magic=b"NOPE") + GOOD_PAYLOAD, 1),
    ("frame-version", _hs_ok() + _hdr(version=9) + GOOD_PAYLOAD, 2),
    ("frame-type", _hs_ok() + _hdr(ftype=ACK) + GOOD_PAYLOAD, 4),
    ("frame-codec", _hs_ok() + _hdr(codec=7) + GOOD_PAYLOAD, 4),
    ("raw-len-lies", _hs_ok() + _hdr(raw_len=6) + GOOD_PAYLOAD, 4),
    ("count-zero", _hs_ok() + _hdr(count=0) + GOOD_PAYLOAD, 4),
    ("count-huge", _hs_ok() + _hdr(count=0xFFFFFFFF) + GOOD_PAYLOAD, 4),
    ("count-mismatch", _hs_ok() + _hdr(count=2, raw_len=8, payload_len=8,
                                       crc=crc32c(b"\x04\0\0\0abcd")) + b"\x04\0\0\0abcd", 4),
    ("message-length-lies", _hs_ok() + _hdr(crc=crc32c(b"\x09\0\0\0x")) + b"\x09\0\0\0x", 4),
    ("too-large", _hs_ok() + _hdr(raw_len=1 << 30, payload_len=1 << 30), 7),
    ("bad-crc", _hs_ok() + _hdr(crc=1234) + GOOD_PAYLOAD, 5),
    ("lz4-ratio", _hs_ok() + _hdr(codec=LZ4, raw_len=1000, payload_len=2), 4),
    ("lz4-garbage", _hs_ok() + _hdr(codec=LZ4, raw_len=10, payload_len=5) + GOOD_PAYLOAD, 6),
    ("zstd-garbage", _hs_ok() + _hdr(codec=ZSTD, raw_len=10, payload_len=5) + GOOD_PAYLOAD, 6),
]


@pytest.mark.parametrize("name,data,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_gets_error_and_server_lives(bsrv, r, name, data, code):
    c = BatchConn(bsrv.bport)
    c.send(data)
    if data.startswith(_hs_ok()):  # a valid handshake, then a bad frame
        assert hello(c) == 1
    assert c.expect_error() == code
    c.close()
    assert_server_alive(bsrv, name)


def test_truncated_and_garbage_then_close(bsrv, r):
    for data in (handshake(PUB, "t")[:10], handshake(PUB, "t") + _hdr()[:20],
                 handshake(PUB, "t") + _hdr(raw_len=100, payload_len=100, count=1) + b"x" * 50,
                 b"\0" * 100000):
        c = BatchConn(bsrv.bport)
        c.send(data)
        c.close()
    assert_server_alive(bsrv, "after truncated input")
    assert r.dbsize() == 0


def test_subscriber_sending_data_is_an_error(bsrv, r):
    sub = subscriber(bsrv.bport, "quiet", b"$")
    sub.send(b"hello")
    assert sub.expect_error() == 13


def test_subscriber_bytes_with_the_handshake_are_an_error(bsrv, r):
    """Regression (issue 12): bytes that arrived in the same read as the
    subscriber's handshake sat in the staging buffer and were ignored."""
    c = BatchConn(bsrv.bport, timeout=5)
    c.send(handshake(SUB, "quiet2", start=b"$") + b"unexpected")
    hello(c)
    f = c.frame()
    assert f.error_code == 13
    assert b"subscriber" in f.payload[2:], f.payload
    assert c.closed()
    assert_server_alive(bsrv, "after a talking subscriber")


def test_subscriber_bytes_while_frames_are_pending_are_an_error(bsrv, r):
    """A subscriber with a backlog that sends bytes gets ERROR 13 after the
    frames already queued, not a silent stream of more batches."""
    c, _ = publisher(bsrv.bport, "talkback")
    c.send(b"".join(batch_frame(q, [b"%d" % q * 1000] * 50) for q in range(1, 41)))
    for _ in range(40):
        ack_of(c)
    sub = BatchConn(bsrv.bport, timeout=10)
    sub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.send(handshake(SUB, "talkback", start=b"0"))
    sub.send(b"x")
    hello(sub)
    while True:
        f = sub.frame()
        if f.type == ERROR:
            assert f.error_code == 13
            break
        assert f.type == BATCH
    assert sub.closed()


def test_wrong_type_topic_is_error_10(bsrv, r):
    r.set("str", "v")
    c = BatchConn(bsrv.bport)
    c.send(handshake(PUB, "str"))
    assert c.expect_error() == 10
    c = BatchConn(bsrv.bport)
    c.send(handshake(SUB, "str", start=b"0"))
    assert c.expect_error() == 10
    # the key changes type while a publisher is connected
    c, _ = publisher(bsrv.bport, "later")
    r.set("later", "x")
    c.send(batch_frame(1, [b"m"]))
    assert c.expect_error() == 10


def test_handshake_deadline_closes_silent_connections(bsrv, r):
    c = BatchConn(bsrv.bport, timeout=20)
    c.send(b"PIRB")
    t0 = time.monotonic()
    assert c.closed(timeout=15)
    assert 9 <= time.monotonic() - t0 <= 13


# ---------------------------------------------------------------- auth, memory

def test_requirepass(start_server):
    s = start_batch_server(start_server, "--requirepass", "s3cret")
    for token in (b"", b"wrong", b"s3cre", b"s3cret!"):
        c = BatchConn(s.bport)
        c.send(handshake(PUB, "k", token=token))
        assert c.expect_error() == 3
    c, nxt = publisher(s.bport, "k", token=b"s3cret")
    c.send(batch_frame(1, [b"ok"]))
    ack_of(c)
    sub = subscriber(s.bport, "k", b"0", token=b"s3cret")
    assert sub.frame().entries()[0][3] == b"ok"


def test_maxmemory_noeviction_is_error_11(start_server):
    s = start_batch_server(start_server, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    c, _ = publisher(s.bport, "mem")
    seq, code = 1, None
    for seq in range(1, 100):
        c.send(batch_frame(seq, [b"x" * 100000] * 5))
        f = c.frame()
        if f.type == ERROR:
            code = f.error_code
            break
    assert code == 11
    assert_server_alive(s, "after OOM")


def test_maxclients_gets_an_error_frame_then_a_clean_close(start_server):
    """Regression (issue 12): a batch connection over maxclients was closed
    at once with its handshake unread, so the kernel sent a reset and the
    client never learned why. Now: ERROR 14, then a graceful close."""
    s = start_batch_server(start_server, "--maxclients", "2")
    held = [publisher(s.bport, "mc")[0] for _ in range(2)]
    for attempt in range(3):
        c = BatchConn(s.bport, timeout=5)
        c.send(handshake(PUB, "mc"))  # the client speaks first, as libpier does
        f = c.frame()
        assert f.error_code == 14
        assert b"max number of clients reached" in f.payload, f.payload
        c.sock.settimeout(5)
        assert c.sock.recv(1) == b"", "a FIN after the ERROR, not a reset"
        c.close()
    for h in held:
        h.close()

    def served():
        c, _ = publisher(s.bport, "mc")
        c.close()
        return True
    wait_for(served, timeout=10, msg="room again once the held connections closed")
    assert_server_alive(s, "after rejected batch connections")


def test_protected_mode_refusal_is_an_error_frame(start_server):
    """Protected mode (no password, a non-loopback client) refuses a batch
    connection with ERROR 3 saying why, as the RESP port answers -DENIED,
    instead of a silent close."""
    from test_safety import NonLoopbackPeer
    peer = NonLoopbackPeer()
    if peer.server_ip is None:
        pytest.skip("no network namespace support and no non-loopback address")
    try:
        s = start_batch_server(start_server, "--bind", "127.0.0.1", peer.server_ip)
        data = peer.exchange(s.bport, handshake(PUB, "pm"))
        f = Frame(data[:32], data[32:])
        assert f.type == ERROR and f.error_code == 3, data
        assert b"protected mode" in f.payload, f.payload
    finally:
        peer.close()


def test_batch_handshake_on_the_resp_port_is_answered_at_once(bsrv):
    """A batch client pointed at the RESP port gets a RESP error at once
    (and a close) instead of waiting for an inline command's newline: the
    handshake has none, so it used to hang until the client gave up."""
    for role, start in ((PUB, b""), (SUB, b"$")):
        s = socket.create_connection(("127.0.0.1", bsrv.port), timeout=5)
        s.sendall(handshake(role, "oops", start=start))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        assert data.startswith(b"-ERR Protocol error: pier batch protocol handshake on the "
                               b"RESP port"), data
    assert_server_alive(bsrv, "after batch handshakes on the RESP port")


def test_info_batch_section(bsrv, r):
    info = r.info("batch")
    assert info["batch_port"] == bsrv.bport
    for k in ("batch_connections", "batch_batches_in", "batch_bytes_in", "batch_messages_in",
              "batch_errors", "batch_batches_out", "batch_bytes_out"):
        assert k in info
    assert info["batch_errors"] >= 1  # the error tests above ran first


# ---------------------------------------------------------------- persistence

def test_batches_and_exactly_once_state_survive_restart(start_server, tmp_path):
    bport = free_port()
    port = free_port()
    d = tmp_path / "persist"
    args = ["--port", port, "--batch-port", bport, "--appendonly", "yes", "--dir", d]
    from conftest import Server
    s = Server("pier", d, args, port=port).start()
    c, _ = publisher(bport, "dur", client_id=99)
    c.send(batch_frame(1, [b"a", b"b"]) + batch_frame(2, [b"c"]))
    ack_of(c)
    ack_of(c)
    c.close()
    before = s.client().xrange("dur")
    s.stop()
    s = Server("pier", d, args, port=port).start()
    assert s.client().xrange("dur") == before
    c, nxt = publisher(bport, "dur", client_id=99)
    assert nxt == 3
    c.send(batch_frame(2, [b"c"]))
    f, _ = ack_of(c)
    assert f.flags & DUPLICATE
    c.close()
    # through a rewrite (the stream's snapshot encoding carries the state)
    s.client().bgrewriteaof()
    wait_for(lambda: s.client().info("persistence")["aof_rewrite_in_progress"] == 0
             and s.client().info("persistence").get("aof_rewrite_scheduled", 0) == 0)
    time.sleep(0.3)
    s.stop()
    s = Server("pier", d, args, port=port).start()
    assert s.client().xrange("dur") == before
    c, nxt = publisher(bport, "dur", client_id=99)
    assert nxt == 3
    c.close()
    s.stop()
