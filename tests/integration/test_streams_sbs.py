"""Streams and pub/sub replies byte-for-byte against a real Redis 7.0.

The same deterministic script (explicit IDs only, nothing time-dependent:
no XPENDING idle times, no XINFO seen/idle times, no radix-tree counters)
runs on redis-server and on the server under test, in RESP2 and RESP3;
every reply must be identical.
"""
import pytest

from conftest import RawConn, Server, parse_reply
from test_side_by_side import Entry, normalize, run_script


def build_stream_script():
    S = []

    def c(*args, unordered=False):
        S.append(Entry(args=tuple(args), unordered=unordered))

    c("FLUSHALL")
    # --- XADD: IDs, options, errors ------------------------------------------
    c("XADD", "s", "1-1", "a", "1", "b", "2")
    c("XADD", "s", "1-1", "a", "1")
    c("XADD", "s", "1-0", "a", "1")
    c("XADD", "s", "1-*", "a", "2")
    c("XADD", "s", "5", "x", "y")
    c("XADD", "s", "5-*", "x", "z")
    c("XADD", "s", "4-*", "x", "z")
    c("XADD", "s", "0-0", "a", "1")
    c("XADD", "new", "0-0", "a", "1")
    c("XADD", "new", "0-*", "a", "1")
    c("XADD", "s", "abc", "a", "1")
    c("XADD", "s", "1-abc", "a", "1")
    c("XADD", "s", "-1", "a", "1")
    c("XADD", "s", "+", "a", "1")
    c("XADD", "s", "-", "a", "1")
    c("XADD", "s", "10-1", "a")
    c("XADD", "s", "10-1", "a", "1", "b")
    c("XADD", "s", "NOMKSTREAM", "10-1", "f", "v")
    c("XADD", "nostream", "NOMKSTREAM", "10-1", "f", "v")
    c("EXISTS", "nostream")
    c("XADD", "s", "MAXLEN", "-1", "11-1", "f", "v")
    c("XADD", "s", "MAXLEN", "abc", "11-1", "f", "v")
    c("XADD", "s", "MAXLEN", "10", "MINID", "0", "11-1", "f", "v")
    c("XADD", "s", "MAXLEN", "10", "LIMIT", "5", "11-1", "f", "v")
    c("XADD", "s", "MAXLEN", "~", "10", "LIMIT", "-1", "11-1", "f", "v")
    c("XADD", "s", "MINID", "bad", "11-1", "f", "v")
    c("XADD", "s", "MAXLEN", "=", "100", "11-1", "f", "v")
    c("XADD", "s", "MINID", "=", "0", "12-1", "f", "v")
    c("XLEN", "s")
    c("XADD", "s", "MAXLEN", "3", "13-1", "f", "v")
    c("XLEN", "s")
    c("XRANGE", "s", "-", "+")
    c("XADD", "s", "MINID", "12", "14-1", "f", "v")
    c("XRANGE", "s", "-", "+")
    c("XADD", "s", "MAXLEN", "0", "15-1", "f", "v")
    c("XLEN", "s")
    c("XADD", "s", "15-1", "f", "v")
    c("XADD", "s", "18446744073709551615-18446744073709551615", "f", "v")
    c("XADD", "s", "*", "f", "v")
    c("XADD", "s", "18446744073709551615-*", "f", "v")
    c("DEL", "s", "new")
    # binary and empty fields, many fields
    c("XADD", "b", "1-1", "", "", b"\x00\xff", b"\r\n")
    c("XADD", "b", "2-1", *[str(i) for i in range(200)])
    c("XRANGE", "b", "-", "+")
    # --- XRANGE / XREVRANGE ----------------------------------------------------
    for i in range(1, 21):
        c("XADD", "r", f"{i}-{i % 3}", "n", str(i))
    c("XRANGE", "r", "-", "+", "COUNT", "5")
    c("XRANGE", "r", "5", "8")
    c("XRANGE", "r", "5-1", "8-0")
    c("XRANGE", "r", "(5-2", "(8-2")
    c("XRANGE", "r", "(5", "+", "COUNT", "2")
    c("XRANGE", "r", "-", "(3")
    c("XRANGE", "r", "(18446744073709551615-18446744073709551615", "+")
    c("XRANGE", "r", "-", "(0-0")
    c("XRANGE", "r", "(-", "+")
    c("XRANGE", "r", "+", "-")
    c("XRANGE", "r", "-", "+", "COUNT", "0")
    c("XRANGE", "r", "-", "+", "COUNT", "-1")
    c("XRANGE", "r", "-", "+", "COUNT")
    c("XRANGE", "r", "-", "+", "COUNT", "x")
    c("XRANGE", "r", "-", "+", "FOO", "1")
    c("XRANGE", "r", "x", "+")
    c("XRANGE", "nokey", "-", "+")
    c("XRANGE", "nokey", "-", "+", "COUNT", "0")
    c("XREVRANGE", "r", "+", "-", "COUNT", "3")
    c("XREVRANGE", "r", "10", "5")
    c("XREVRANGE", "r", "(10", "(5")
    c("XREVRANGE", "r", "-", "+")
    c("XRANGE", "r")
    # --- XDEL ---------------------------------------------------------------------
    c("XDEL", "r", "3-0", "4-1", "999-0")
    c("XDEL", "r", "3-0")
    c("XDEL", "r", "5-2", "bad")
    c("XDEL", "nokey", "1-1")
    c("XLEN", "r")
    c("XRANGE", "r", "-", "+", "COUNT", "4")
    c("XREVRANGE", "r", "5", "-")
    for i in range(6, 16):
        c("XDEL", "r", f"{i}-{i % 3}")
    c("XRANGE", "r", "-", "+")
    c("XLEN", "r")
    # --- XTRIM ----------------------------------------------------------------------
    c("XTRIM", "r", "MAXLEN", "3")
    c("XRANGE", "r", "-", "+")
    c("XTRIM", "r", "MINID", "19")
    c("XRANGE", "r", "-", "+")
    c("XTRIM", "r")
    c("XTRIM", "r", "FOO", "1")
    c("XTRIM", "r", "MAXLEN", "1", "LIMIT", "1")
    c("XTRIM", "r", "MAXLEN", "-5")
    c("XTRIM", "nokey", "MAXLEN", "1")
    c("XTRIM", "nokey", "BAD")
    c("XTRIM", "r", "MAXLEN", "=", "0")
    c("XLEN", "r")
    # --- XSETID -----------------------------------------------------------------------
    c("XADD", "x", "5-5", "f", "v")
    c("XSETID", "x", "5-4")
    c("XSETID", "x", "6-0")
    c("XADD", "x", "6-0", "f", "v")
    c("XSETID", "x", "10-0", "ENTRIESADDED", "0")
    c("XSETID", "x", "10-0", "ENTRIESADDED", "-1")
    c("XSETID", "x", "10-0", "ENTRIESADDED", "5", "MAXDELETEDID", "11-0")
    c("XSETID", "x", "10-0", "ENTRIESADDED", "5", "MAXDELETEDID", "3-0")
    c("XSETID", "x", "10-0", "FOO")
    c("XSETID", "nokey", "1-1")
    c("XSETID", "x", "bad")
    c("XADD", "x", "9-9", "f", "v")
    c("XADD", "x", "10-1", "f", "v")
    c("XINFO", "GROUPS", "x")
    # --- wrong types ----------------------------------------------------------------------
    c("SET", "str", "v")
    for cmd in (("XADD", "str", "1-1", "f", "v"), ("XLEN", "str"), ("XRANGE", "str", "-", "+"),
                ("XDEL", "str", "1-1"), ("XTRIM", "str", "MAXLEN", "1"), ("XSETID", "str", "1-1"),
                ("XREAD", "STREAMS", "str", "0"), ("XGROUP", "CREATE", "str", "g", "0"),
                ("XINFO", "STREAM", "str"), ("XACK", "str", "g", "1-1"),
                ("XPENDING", "str", "g"), ("XCLAIM", "str", "g", "c", "0", "1-1")):
        c(*cmd)
    c("GET", "x"); c("INCR", "x"); c("APPEND", "x", "a"); c("TYPE", "x"); c("TYPE", "str")
    c("STRLEN", "x"); c("SETRANGE", "x", "0", "a"); c("GETRANGE", "x", "0", "1")
    c("SET", "x", "now-a-string"); c("TYPE", "x"); c("GET", "x")
    # --- XREAD -------------------------------------------------------------------------
    c("XADD", "a", "1-1", "f", "1"); c("XADD", "a", "2-1", "f", "2"); c("XADD", "bb", "3-1", "g", "3")
    c("XREAD", "STREAMS", "a", "0")
    c("XREAD", "COUNT", "1", "STREAMS", "a", "bb", "0", "0")
    c("XREAD", "STREAMS", "a", "bb", "1-1", "3-1")
    c("XREAD", "STREAMS", "a", "$")
    c("XREAD", "STREAMS", "a", "+")
    c("XREAD", "STREAMS", "a", ">")
    c("XREAD", "STREAMS", "a", "bb", "0")
    c("XREAD", "STREAMS", "nokey", "0")
    c("XREAD", "COUNT", "x", "STREAMS", "a", "0")
    c("XREAD", "COUNT", "-5", "STREAMS", "a", "0")
    c("XREAD", "BLOCK", "x", "STREAMS", "a", "0")
    c("XREAD", "BLOCK", "-1", "STREAMS", "a", "0")
    c("XREAD", "BLOCK", "10", "STREAMS", "a", "0")
    c("XREAD", "FOO", "STREAMS", "a", "0")
    c("XREAD", "STREAMS")
    c("XREAD", "COUNT", "1", "a")
    c("XREAD", "STREAMS", "a", "bad")
    c("XREAD", "BLOCK", "20", "STREAMS", "a", "$")
    c("XREAD", "GROUP", "g", "c", "STREAMS", "a", "0")
    # --- consumer groups -------------------------------------------------------------
    c("XGROUP", "CREATE", "a", "g1", "0")
    c("XGROUP", "CREATE", "a", "g1", "0")
    c("XGROUP", "CREATE", "a", "g2", "$")
    c("XGROUP", "CREATE", "a", "g3", "1-1", "ENTRIESREAD", "1")
    c("XGROUP", "CREATE", "a", "g4", "0", "ENTRIESREAD", "-2")
    c("XGROUP", "CREATE", "a", "g4", "0", "FOO")
    c("XGROUP", "CREATE", "a", "g4", "bad")
    c("XGROUP", "CREATE", "nokey", "g", "0")
    c("XGROUP", "CREATE", "mk", "g", "$", "MKSTREAM")
    c("XLEN", "mk"); c("TYPE", "mk"); c("XINFO", "GROUPS", "mk")
    c("XGROUP", "CREATE", "a")
    c("XGROUP", "FOO")
    c("XGROUP", "HELP")
    c("XGROUP", "SETID", "a", "nogroup", "0")
    c("XGROUP", "CREATECONSUMER", "a", "g1", "alice")
    c("XGROUP", "CREATECONSUMER", "a", "g1", "alice")
    c("XGROUP", "CREATECONSUMER", "a", "nogroup", "alice")
    c("XGROUP", "DELCONSUMER", "a", "g1", "nobody")
    c("XINFO", "GROUPS", "a")
    c("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "1", "STREAMS", "a", ">")
    c("XREADGROUP", "GROUP", "g1", "bob", "STREAMS", "a", ">")
    c("XREADGROUP", "GROUP", "g1", "bob", "STREAMS", "a", ">")
    c("XREADGROUP", "GROUP", "g1", "carol", "STREAMS", "a", ">")
    c("XREADGROUP", "GROUP", "g1", "alice", "STREAMS", "a", "0")
    c("XREADGROUP", "GROUP", "g1", "bob", "STREAMS", "a", "0")
    c("XREADGROUP", "GROUP", "g1", "bob", "STREAMS", "a", "1-1")
    c("XREADGROUP", "GROUP", "g1", "alice", "STREAMS", "a", "$")
    c("XREADGROUP", "GROUP", "nog", "alice", "STREAMS", "a", ">")
    c("XREADGROUP", "GROUP", "g1", "alice", "STREAMS", "nokey", ">")
    c("XREADGROUP", "STREAMS", "a", ">")
    c("XREADGROUP", "GROUP", "g1", "alice", "STREAMS", "a")
    c("XREADGROUP", "GROUP", "g2", "dave", "NOACK", "STREAMS", "a", "0")
    c("XREADGROUP", "GROUP", "g3", "erin", "NOACK", "STREAMS", "a", ">")
    c("XPENDING", "a", "g1")
    c("XPENDING", "a", "g2")
    c("XPENDING", "a", "g3")
    c("XPENDING", "a", "nog")
    c("XPENDING", "nokey", "g1")
    c("XPENDING", "a", "g1", "-", "+")
    c("XPENDING", "a", "g1", "-", "+", "x")
    c("XPENDING", "a", "g1", "IDLE", "x", "-", "+", "10")
    c("XPENDING", "a", "g1", "IDLE", "0", "-", "+")
    c("XPENDING", "a", "g1", "x", "+", "10")
    c("XPENDING", "a", "g1", "-", "+", "10", "nobody")
    c("XPENDING", "a", "g1", "-", "+", "0")
    c("XINFO", "GROUPS", "a")
    c("XACK", "a", "g1", "1-1", "9-9")
    c("XACK", "a", "g1", "1-1")
    c("XACK", "a", "g1", "bad")
    c("XACK", "a", "nog", "1-1")
    c("XACK", "nokey", "g1", "1-1")
    c("XPENDING", "a", "g1")
    c("XINFO", "GROUPS", "a")
    # claim with JUSTID / FORCE / RETRYCOUNT (replies not time dependent)
    c("XCLAIM", "a", "g1", "alice", "0", "2-1", "JUSTID")
    c("XCLAIM", "a", "g1", "alice", "0", "2-1")
    c("XCLAIM", "a", "g1", "carol", "0", "2-1", "RETRYCOUNT", "7", "JUSTID")
    c("XCLAIM", "a", "g1", "alice", "0", "1-1")
    c("XCLAIM", "a", "g1", "alice", "0", "1-1", "FORCE", "JUSTID")
    c("XCLAIM", "a", "g1", "alice", "0", "9-9", "FORCE")
    c("XCLAIM", "a", "g1", "alice", "x", "1-1")
    c("XCLAIM", "a", "g1", "alice", "0", "1-1", "IDLE", "x")
    c("XCLAIM", "a", "g1", "alice", "0", "1-1", "TIME", "x")
    c("XCLAIM", "a", "g1", "alice", "0", "1-1", "RETRYCOUNT", "x")
    c("XCLAIM", "a", "g1", "alice", "0", "1-1", "BOGUS")
    c("XCLAIM", "a", "g1", "alice", "0", "1-1", "LASTID", "bad")
    c("XCLAIM", "a", "nog", "alice", "0", "1-1")
    c("XCLAIM", "a", "g1", "alice", "3600000", "1-1")
    c("XPENDING", "a", "g1")
    c("XAUTOCLAIM", "a", "g1", "zed", "0", "0", "COUNT", "1", "JUSTID")
    c("XAUTOCLAIM", "a", "g1", "zed", "0", "0")
    c("XAUTOCLAIM", "a", "g1", "zed", "3600000", "0")
    c("XAUTOCLAIM", "a", "g1", "zed", "0", "0", "COUNT", "0")
    c("XAUTOCLAIM", "a", "g1", "zed", "0", "0", "COUNT", "x")
    c("XAUTOCLAIM", "a", "g1", "zed", "x", "0")
    c("XAUTOCLAIM", "a", "g1", "zed", "0", "bad")
    c("XAUTOCLAIM", "a", "g1", "zed", "0", "0", "FOO")
    c("XAUTOCLAIM", "a", "nog", "zed", "0", "0")
    # deleted entries in PELs
    c("XDEL", "a", "1-1")
    c("XREADGROUP", "GROUP", "g1", "zed", "STREAMS", "a", "0")
    c("XAUTOCLAIM", "a", "g1", "zed", "0", "0")
    c("XPENDING", "a", "g1")
    c("XINFO", "GROUPS", "a")
    c("XGROUP", "DELCONSUMER", "a", "g1", "zed")
    c("XGROUP", "SETID", "a", "g1", "0", "ENTRIESREAD", "0")
    c("XGROUP", "SETID", "a", "g1", "$")
    c("XGROUP", "SETID", "a", "g1", "0", "ENTRIESREAD", "x")
    c("XGROUP", "SETID", "a", "g1", "bad")
    c("XINFO", "GROUPS", "a")
    c("XGROUP", "DESTROY", "a", "g1")
    c("XGROUP", "DESTROY", "a", "g1")
    c("XGROUP", "DESTROY", "nokey", "g1")
    c("XINFO", "GROUPS", "a")
    # lag bookkeeping across adds, deletes and trims
    c("DEL", "l")
    for i in range(1, 11):
        c("XADD", "l", f"{i}-0", "f", str(i))
    c("XGROUP", "CREATE", "l", "lg", "0")
    c("XGROUP", "CREATE", "l", "lg2", "5-0")
    c("XREADGROUP", "GROUP", "lg", "c", "COUNT", "3", "STREAMS", "l", ">")
    c("XINFO", "GROUPS", "l")
    c("XDEL", "l", "5-0")
    c("XINFO", "GROUPS", "l")
    c("XREADGROUP", "GROUP", "lg", "c", "COUNT", "3", "STREAMS", "l", ">")
    c("XINFO", "GROUPS", "l")
    c("XTRIM", "l", "MAXLEN", "2")
    c("XINFO", "GROUPS", "l")
    c("XREADGROUP", "GROUP", "lg2", "c", "STREAMS", "l", ">")
    c("XINFO", "GROUPS", "l")
    c("DEL", "q"); c("XADD", "q", "1-1", "a", "1")
    c("XGROUP", "CREATE", "q", "g", "0", "ENTRIESREAD", "1000")
    c("XINFO", "GROUPS", "q")
    c("XGROUP", "SETID", "q", "g", "0", "ENTRIESREAD", "9223372036854775807")
    c("XREADGROUP", "GROUP", "g", "c", "STREAMS", "q", ">")
    c("XINFO", "GROUPS", "q")
    # --- XINFO errors and help --------------------------------------------------------
    c("XINFO", "HELP")
    c("XINFO", "FOO")
    c("XINFO", "STREAM")
    c("XINFO", "STREAM", "nokey")
    c("XINFO", "GROUPS", "nokey")
    c("XINFO", "CONSUMERS", "a", "nog")
    c("XINFO", "STREAM", "a", "FOO")
    c("XINFO", "STREAM", "a", "FULL", "COUNT")
    c("XINFO", "STREAM", "a", "FULL", "COUNT", "x")
    # --- pub/sub introspection (no subscribers on this connection) ---------------------
    c("PUBLISH", "chan", "msg")
    c("PUBSUB", "CHANNELS")
    c("PUBSUB", "NUMSUB", "a", "b")
    c("PUBSUB", "NUMPAT")
    c("PUBSUB", "FOO")
    c("PUBSUB", "NUMPAT", "x")
    c("PUBSUB", "HELP")
    c("PUBLISH", "chan")
    c("UNSUBSCRIBE")
    c("PUNSUBSCRIBE")
    c("UNSUBSCRIBE", "a", "b")
    c("PUNSUBSCRIBE", "p*")
    # subscriber mode (RESP2 restrictions; RESP3 allows everything)
    c("SUBSCRIBE", "c1", "c2", "c1")
    c("PSUBSCRIBE", "p*", "q?")
    c("GET", "k")
    c("PING")
    c("PING", "hi")
    c("PUBSUB", "NUMSUB", "c1", "c3")
    c("UNSUBSCRIBE", "c1")
    c("PUNSUBSCRIBE")
    c("UNSUBSCRIBE")
    c("PING")
    c("GET", "k")
    return S


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    s = Server("redis", tmp_path_factory.mktemp("ref")).start()
    yield s
    s.stop()


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_streams_side_by_side(reference, server, resp3):
    script = build_stream_script()
    expected = run_script(reference.port, script, resp3)
    actual = run_script(server.port, script, resp3)
    mismatches = [(i, e, x, a) for i, (e, x, a) in enumerate(zip(script, expected, actual))
                  if normalize(e, x) != normalize(e, a)]
    assert all(isinstance(x, bytes) for x in expected), "the reference Redis failed a command"
    if mismatches:
        lines = [f"{len(mismatches)} of {len(script)} replies differ "
                 f"({'RESP3' if resp3 else 'RESP2'}); first ones:"]
        for i, entry, exp, act in mismatches[:40]:
            lines.append(f"  #{i}: {entry!r}\n      redis: {exp!r}\n      got:   {act!r}")
        pytest.fail("\n".join(lines), pytrace=False)


def test_pubsub_messages_side_by_side(reference, server):
    """Subscribe confirmations and delivered messages, RESP2 and RESP3."""
    out = []
    for srv in (reference, server):
        got = []
        for resp3 in (False, True):
            sub, pub = RawConn(srv.port), RawConn(srv.port)
            if resp3:
                sub.cmd("HELLO", "3")
            got.append(sub.cmd("SUBSCRIBE", "news", "sport"))
            got.append(sub.read_reply_raw())
            got.append(sub.cmd("PSUBSCRIBE", "n*"))
            got.append(pub.cmd("PUBLISH", "news", "hello"))
            got.append(sub.read_reply_raw())
            got.append(sub.read_reply_raw())
            got.append(pub.cmd("PUBLISH", "sport", b"\x00bin\r\n"))
            got.append(sub.read_reply_raw())
            got.append(pub.cmd("PUBSUB", "NUMSUB", "news", "none"))
            got.append(pub.cmd("PUBSUB", "NUMPAT"))
            # the order of an UNSUBSCRIBE-all is the server's dict order
            unsub = [parse_reply(sub.cmd("UNSUBSCRIBE"))[0], parse_reply(sub.read_reply_raw())[0]]
            got.append((sorted(u[1] for u in unsub), [u[2] for u in unsub], unsub[0][0]))
            got.append(sub.cmd("PUNSUBSCRIBE"))
            got.append(pub.cmd("PUBLISH", "news", "x"))
            sub.close()
            pub.close()
        out.append(got)
    assert out[1] == out[0]


STREAM_COMMANDS = ["xadd", "xlen", "xrange", "xrevrange", "xdel", "xtrim", "xsetid", "xread",
                   "xreadgroup", "xinfo", "xgroup", "xack", "xpending", "xclaim", "xautoclaim",
                   "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "publish", "pubsub"]


def test_command_info_agrees(reference, server):
    """Name, arity, key positions as Redis; no flag or ACL category Redis
    does not claim."""
    diffs = []
    for name in STREAM_COMMANDS:
        infos = []
        for srv in (reference, server):
            c = RawConn(srv.port)
            e = parse_reply(c.cmd("COMMAND", "INFO", name))[0][0]
            c.close()
            infos.append(({"name": e[0], "arity": e[1], "keys": e[3:6]}, set(e[2]), set(e[6])))
        (exp, exp_flags, exp_acl), (act, act_flags, act_acl) = infos
        if exp != act:
            diffs.append(f"  {name}: redis {exp} pier {act}")
        if not act_flags <= exp_flags:
            diffs.append(f"  {name}: flags not in redis: {act_flags - exp_flags}")
        if not act_acl <= exp_acl:
            diffs.append(f"  {name}: acl categories not in redis: {act_acl - exp_acl}")
    assert not diffs, "COMMAND INFO differs:\n" + "\n".join(diffs)
