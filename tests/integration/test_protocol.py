"""Wire protocol: pipelining, binary safety, large values, inline commands,
fragmented frames, RESP3."""
import random
import threading
import time

from conftest import encode_command, parse_reply, rawcmd


def test_redis_py_pipeline_1000(r):
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set(b"p:%d" % i, b"val-%d" % i)
    for i in range(500):
        p.get(b"p:%d" % i)
    out = p.execute()
    assert len(out) == 1000
    assert out[:500] == [True] * 500
    assert out[500:] == [b"val-%d" % i for i in range(500)]
    assert r.dbsize() == 500


def test_raw_10000_pings_one_send(raw):
    c = raw()
    n = 10000
    c.send(b"*1\r\n$4\r\nPING\r\n" * (n // 2) + b"PING\r\n" * (n // 2))
    data = c.read_exact(7 * n, timeout=30)
    assert data == b"+PONG\r\n" * n
    assert c.cmd("PING") == b"+PONG\r\n"


def test_raw_pipeline_mixed_commands(raw):
    c = raw()
    c.send(b"".join(encode_command("SET", "k%d" % i, "v%d" % i) for i in range(2000)) +
           b"".join(encode_command("GET", "k%d" % i) for i in range(2000)))
    for i in range(2000):
        assert c.read_reply_raw() == b"+OK\r\n"
    for i in range(2000):
        v = b"v%d" % i
        assert c.read_reply_raw() == b"$%d\r\n%s\r\n" % (len(v), v)


def test_pipeline_from_concurrent_clients(server):
    errors = []

    def worker(n):
        try:
            c = server.client()
            p = c.pipeline(transaction=False)
            for i in range(300):
                p.incr(b"ctr")
                p.set(b"w%d:%d" % (n, i), b"x" * (i % 50))
            p.execute()
            c.close()
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors
    c = server.client()
    assert c.get(b"ctr") == b"2400"
    assert c.exists(*[b"w%d:%d" % (n, i) for n in range(8) for i in range(300)]) == 2400
    c.delete(b"ctr", *[b"w%d:%d" % (n, i) for n in range(8) for i in range(300)])


def test_binary_values_round_trip(r, raw):
    values = [b"\x00", b"a\x00b", b"\r\n", b"\r\n\r\n$3\r\n", b"*1\r\n$4\r\nPING\r\n",
              bytes(range(256)), bytes(range(256)) * 100, b"\xff\xfe\x00\r"]
    for i, v in enumerate(values):
        key = b"bin\x00\r\nkey:%d" % i
        assert r.set(key, v)
        assert r.get(key) == v
        assert r.strlen(key) == len(v)
    assert r.append(b"\x00", b"\r\n\x00") == 3
    assert r.get(b"\x00") == b"\r\n\x00"
    c = raw()
    assert c.cmd("SET", b"k\r\n", b"v\x00\r\n") == b"+OK\r\n"
    assert c.cmd("GET", b"k\r\n") == b"$4\r\nv\x00\r\n\r\n"
    assert c.cmd("ECHO", b"\x00\x01") == b"$2\r\n\x00\x01\r\n"


def test_10mb_value(r, raw):
    rnd = random.Random(1234)
    big = rnd.randbytes(10 * 1024 * 1024) if hasattr(rnd, "randbytes") else \
        bytes(rnd.getrandbits(8) for _ in range(10 * 1024 * 1024))
    assert r.set("big", big)
    assert r.strlen("big") == len(big)
    assert r.get("big") == big
    assert r.getrange("big", -5, -1) == big[-5:]
    assert r.append("big", b"tail") == len(big) + 4
    # raw, sent in many small pieces
    c = raw()
    frame = encode_command("SET", "big2", big)
    for off in range(0, len(frame), 65536 + 7):
        c.send(frame[off:off + 65536 + 7])
    assert c.read_reply_raw(timeout=30) == b"+OK\r\n"
    c.send(encode_command("GET", "big2"))
    rep = c.read_reply_raw(timeout=30)
    assert rep == b"$%d\r\n" % len(big) + big + b"\r\n"
    r.delete("big", "big2")


def test_fragmented_frames_byte_by_byte(raw):
    c = raw()
    frame = encode_command("SET", "frag", "hello world") + encode_command("GET", "frag") + b"PING\r\n"
    for i in range(len(frame)):
        c.send(frame[i:i + 1])
        if i % 10 == 0:
            time.sleep(0.001)
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.read_reply_raw() == b"$11\r\nhello world\r\n"
    assert c.read_reply_raw() == b"+PONG\r\n"


def test_many_arguments(r):
    keys = {b"m%d" % i: b"%d" % i for i in range(3000)}
    assert r.mset(keys) is True
    assert r.mget(list(keys)) == list(keys.values())
    assert r.exists(*keys) == 3000
    assert r.delete(*keys) == 3000


# --- inline commands -----------------------------------------------------------

def test_inline_quoting(raw):
    c = raw()
    c.send(b'SET k "a b\\x41"\r\nGET k\r\n')
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.read_reply_raw() == b"$4\r\na bA\r\n"
    c.send(b"SET k 'it\\'s'\r\nGET k\r\n")
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.read_reply_raw() == b"$4\r\nit's\r\n"
    c.send(b'SET k "\\t\\n\\r\\\\\\"\\x00\\xff"\r\nGET k\r\n')
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.read_reply_raw() == b'$7\r\n\t\n\r\\"\x00\xff\r\n'
    c.send(b'SET k ""\r\nSTRLEN k\r\n')
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.read_reply_raw() == b":0\r\n"
    c.send(b"  SET   k2   v2  \r\nGET k2\r\n")
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.read_reply_raw() == b"$2\r\nv2\r\n"


def test_inline_lf_only_and_empty_lines(raw):
    c = raw()
    c.send(b"PING\n\r\n\n   \r\nECHO hi\n")
    assert c.read_reply_raw() == b"+PONG\r\n"
    assert c.read_reply_raw() == b"$2\r\nhi\r\n"


def test_inline_unbalanced_quotes(raw, server):
    from conftest import assert_server_alive
    c = raw()
    c.send(b'SET k "unbalanced\r\nPING\r\n')
    data, closed = c.read_until_closed(5)
    assert data == b"-ERR Protocol error: unbalanced quotes in request\r\n"
    assert closed
    c = raw()
    c.send(b'SET k "a"b\r\n')
    data, closed = c.read_until_closed(5)
    assert data == b"-ERR Protocol error: unbalanced quotes in request\r\n" and closed
    assert_server_alive(server)


def test_inline_and_multibulk_mixed(raw):
    c = raw()
    c.send(b"SET a 1\r\n" + encode_command("INCR", "a") + b"INCR a\r\n" + encode_command("GET", "a"))
    assert c.read_reply_raw() == b"+OK\r\n"
    assert c.read_reply_raw() == b":2\r\n"
    assert c.read_reply_raw() == b":3\r\n"
    assert c.read_reply_raw() == b"$1\r\n3\r\n"


def test_multibulk_zero_and_negative_count_skipped(raw):
    c = raw()
    c.send(b"*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n")
    assert c.read_reply_raw() == b"+PONG\r\n"
    c.send(b"*1\r\n$4\r\nPING\r\n")
    assert c.read_reply_raw() == b"+PONG\r\n"


def test_empty_command_name(raw):
    c = raw()
    assert c.cmd("") == b"-ERR unknown command '', with args beginning with: \r\n"


# --- RESP3 -----------------------------------------------------------------------

def test_resp3_replies(raw):
    c = raw()
    hello = c.cmd("HELLO", "3")
    assert hello.startswith(b"%"), hello  # exact shape: test_connection.py::test_hello_3_raw
    assert c.cmd("FLUSHALL") == b"+OK\r\n"
    assert c.cmd("PING") == b"+PONG\r\n"
    assert c.cmd("GET", "nokey") == b"_\r\n"
    assert c.cmd("GETDEL", "nokey") == b"_\r\n"
    assert c.cmd("SET", "k", "v", "GET") == b"_\r\n"
    assert c.cmd("SET", "k", "w", "GET") == b"$1\r\nv\r\n"
    assert c.cmd("MGET", "nokey", "k") == b"*2\r\n_\r\n$1\r\nw\r\n"
    assert c.cmd("TTL", "k") == b":-1\r\n"
    assert c.cmd("NOSUCH") == b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
    assert c.cmd("SCAN", "0", "MATCH", "nomatch") == b"*2\r\n$1\r\n0\r\n*0\r\n"
    assert c.cmd("KEYS", "k") == b"*1\r\n$1\r\nk\r\n"
    assert c.cmd("RANDOMKEY") == b"$1\r\nk\r\n"
    assert c.cmd("DEL", "k") == b":1\r\n"
    assert c.cmd("RANDOMKEY") == b"_\r\n"
    assert c.cmd("CLIENT", "GETNAME") == b"_\r\n"
    t = parse_reply(c.cmd("TIME"))[0]
    assert len(t) == 2 and all(isinstance(x, bytes) for x in t)
    cfg = parse_reply(c.cmd("CONFIG", "GET", "timeout"))[0]
    assert list(cfg) == [(b"timeout", b"0")]
    # inline commands work in RESP3 too
    c.send(b"GET nokey\r\n")
    assert c.read_reply_raw() == b"_\r\n"


def test_resp3_info_is_verbatim_or_bulk(raw):
    c = raw()
    c.cmd("HELLO", "3")
    rep = c.cmd("INFO", "server")
    # Redis 7.0 replies to INFO with a verbatim string '=...txt:' in RESP3
    assert rep.startswith(b"=") and rep[rep.index(b"\r\n") + 2:].startswith(b"txt:"), rep[:40]
    text = parse_reply(rep)[0]
    assert b"redis_version:" in text


def test_resp3_redis_py_on_resp2_connection_still_fine(r):
    assert rawcmd(r, "HELLO", "2")[0] == b"server"
    assert r.get("nokey") is None
