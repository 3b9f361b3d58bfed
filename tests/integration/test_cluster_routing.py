"""Cluster routing decides from the command row (src/cmd/command.h): a
3-node cluster must answer every command as a single node does, whichever
node a client talks to and whatever its consistency, because routing only
chooses WHERE a command runs, never what it answers.

Each test runs the same commands on a standalone pier node and on the
cluster's nodes and compares the replies byte for byte."""
import pytest

from conftest import IS_REDIS, RawConn, Server, encode_command, wait_for
from test_libpier_cluster import leader_of, start_cluster

pytestmark = pytest.mark.skipif(IS_REDIS, reason="pier cluster mode is pier's own")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """(standalone, leader, follower) once the cluster serves."""
    single = Server("pier", tmp_path_factory.mktemp("single"))
    single.start()
    cluster, _ = start_cluster(tmp_path_factory.mktemp("cluster"))
    wait_for(lambda: leader_of(cluster) is not None, timeout=15, msg="a serving leader")
    lead = leader_of(cluster)
    follower = cluster[(lead + 1) % 3]
    yield single, cluster[lead], follower
    single.stop()
    for s in cluster:
        s.stop(check=s.alive())


def replies(server, script, weak=False):
    c = RawConn(server.port)
    if weak:
        assert c.cmd("PIER.CONSISTENCY", "WEAK") == b"+OK\r\n"
    out = [c.cmd(*args) for args in script]
    c.close()
    return out


def differences(script, expected, got):
    return [f"  {' '.join(map(str, a))}: single {e!r} cluster {g!r}"
            for a, e, g in zip(script, expected, got) if e != g]


def test_weak_session_refused_sets_answer_their_error(nodes):
    """Regression: a weak session answered +OK at once to every SET it took
    for blind, including ones SET itself refuses (KEEPTTL with a time, two
    time units, a time that overflows or is no integer), so the client
    believed a write that never happened."""
    single, _, follower = nodes
    script = [
        ("SET", "wk", "v", "KEEPTTL", "EX", "10"),
        ("SET", "wk", "v", "EX", "10", "PX", "10"),
        ("SET", "wk", "v", "EX", "9223372036854775807"),
        ("SET", "wk", "v", "PX", "18446744073709551615"),
        ("SET", "wk", "v", "EX", "0"),
        ("SETEX", "wk", "9223372036854775807", "v"),
        ("PSETEX", "wk", "-1", "v"),
        ("MSET", "wk", "v", "wk2"),
        ("GET", "wk"),
    ]
    expected = replies(single, script)
    for weak in (False, True):
        diffs = differences(script, expected, replies(follower, script, weak=weak))
        assert not diffs, f"weak={weak}:\n" + "\n".join(diffs)


# Every family, its subcommands, its refusals: routing must never change a
# reply. Nothing here depends on the clock or on connection ids.
SCRIPT = [
    ("PING",), ("ECHO", "x"), ("NOSUCH", "a"), ("GET",), ("CLIENT", "FOO"), ("CLIENT", "ID", "x"),
    ("CLIENT", "SETNAME", "r"), ("CLIENT", "GETNAME"), ("CONFIG", "GET", "maxmemory-policy"),
    ("COMMAND", "GETKEYS", "XREAD", "STREAMS", "a", "b", "0", "0"), ("COMMAND", "INFO", "xgroup|help"),
    ("SET", "k", "v"), ("GET", "k"), ("MSET", "a", "1", "b", "2"), ("MGET", "a", "b", "c"),
    ("INCR", "n"), ("INCRBY", "n", "x"), ("APPEND", "k", "w"), ("GETRANGE", "k", "0", "-1"),
    ("SET", "t", "v", "EX", "1000"), ("TTL", "t"), ("EXISTS", "a", "b", "zz"), ("TYPE", "a"),
    ("RENAME", "a", "a2"), ("DEL", "a2", "b"), ("KEYS", "k*"),
    ("XADD", "s", "1-1", "f", "v"), ("XADD", "s", "1-2", "f", "w"), ("XLEN", "s"),
    ("XRANGE", "s", "-", "+"), ("XREAD", "COUNT", "1", "STREAMS", "s", "0"),
    ("XREAD", "STREAMS", "s", "s2", "0"), ("XGROUP", "HELP"), ("XGROUP", "NOSUCH"),
    ("XGROUP", "CREATE", "s", "g", "0"), ("XGROUP", "CREATE", "s", "g", "0"),
    ("XGROUP", "CREATECONSUMER", "s", "g", "bob"), ("XGROUP", "CREATE", "s"),
    ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"),
    ("XPENDING", "s", "g"), ("XACK", "s", "g", "1-1"), ("XINFO", "GROUPS", "s"),
    ("XINFO", "HELP"), ("XINFO", "STREAM", "nokey"), ("XINFO", "NOSUCH"),
    ("XCLAIM", "s", "g", "bob", "0", "1-2", "JUSTID"),
    ("XAUTOCLAIM", "s", "g", "carol", "0", "0-0", "JUSTID"),
    ("XGROUP", "SETID", "s", "g", "0"), ("XGROUP", "DELCONSUMER", "s", "g", "bob"),
    ("XGROUP", "DESTROY", "s", "g"), ("XTRIM", "s", "MAXLEN", "1"), ("XLEN", "s"),
    ("PUBLISH", "ch", "m"), ("PUBSUB", "NUMSUB", "ch"), ("PUBSUB", "CHANNELS", "a", "b"),
    ("DBSIZE",), ("FLUSHALL",), ("DBSIZE",),
]


def test_cluster_answers_as_a_single_node(nodes):
    single, leader, follower = nodes
    expected = replies(single, SCRIPT)
    for name, srv in (("leader", leader), ("follower", follower)):
        diffs = differences(SCRIPT, expected, replies(srv, SCRIPT))
        assert not diffs, f"{name}:\n" + "\n".join(diffs)
