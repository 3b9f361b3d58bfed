"""The --io thread model (one thread per connection, blocking I/O) shares
every command with the loop model: these tests run the behaviours that
depend on the I/O model (pipelining, kills, timeouts, limits, shutdown)
against it."""

import threading

import pytest

from conftest import encode_command, pier_only, wait_for

pytestmark = pier_only


@pytest.fixture
def tsrv(start_server):
    return start_server("--io", "thread")


def test_commands_and_pipeline(tsrv):
    r = tsrv.client()
    assert r.set("k", "v") and r.get("k") == b"v"
    assert r.incrby("n", 5) == 5
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"key{i}", i)
    p.execute()
    assert r.dbsize() == 2002
    raw = tsrv.raw()
    raw.send(b"PING\r\n" * 5000)
    assert raw.read_exact(len(b"+PONG\r\n") * 5000) == b"+PONG\r\n" * 5000
    assert r.config_get("io") == {"io": "thread"}


def test_protocol_error_closes_only_that_client(tsrv):
    bad = tsrv.raw()
    bad.send(b"*1\r\n$99999999999\r\n")
    data, closed = bad.read_until_closed(5)
    assert data.startswith(b"-ERR Protocol error: invalid bulk length") and closed
    assert tsrv.client().ping()


def test_client_kill_and_stats(tsrv):
    r = tsrv.client()
    victim = tsrv.raw()
    vid = int(victim.cmd("CLIENT", "ID")[1:-2])
    assert r.execute_command("CLIENT", "KILL", "ID", vid) == 1
    assert victim.is_closed(5)
    wait_for(lambda: r.info("clients")["connected_clients"] == 1)
    stats = r.info("stats")
    assert stats["total_commands_processed"] >= 2
    assert stats["total_connections_received"] >= 2


def test_idle_timeout(tsrv):
    r = tsrv.client()
    r.config_set("timeout", 1)
    idle = tsrv.raw()
    assert idle.cmd("PING") == b"+PONG\r\n"
    assert idle.is_closed(6)
    r.config_set("timeout", 0)


def test_idle_timeout_spares_slow_senders(tsrv):
    """Issue 12, item 10, in the thread model: bytes of an unfinished
    command count as activity."""
    r = tsrv.client()
    r.config_set("timeout", 1)
    try:
        slow = tsrv.raw()
        slow.send_slowly(encode_command("ECHO", "slowly"), every=0.3, for_s=3.0)
        assert slow.read_reply() == b"slowly"
    finally:
        tsrv.client().config_set("timeout", 0)


def test_maxclients(start_server):
    srv = start_server("--io", "thread", "--maxclients", "3")
    first = srv.raw()
    # The start-up probe's connection may still hold a slot: wait for it.
    wait_for(lambda: b"connected_clients:1\r\n" in first.cmd("INFO", "clients"))
    conns = [first, srv.raw(), srv.raw()]
    for c in conns:
        assert c.cmd("PING") == b"+PONG\r\n"
    extra = srv.raw()
    data, closed = extra.read_until_closed(5)
    assert data == b"-ERR max number of clients reached\r\n" and closed


def test_concurrent_counters(tsrv):
    def work():
        c = tsrv.client()
        for _ in range(500):
            c.incr("counter")
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(tsrv.client().get("counter")) == 4000


def test_sigterm_with_open_connections(tsrv):
    conns = [tsrv.raw() for _ in range(20)]
    for c in conns:
        c.cmd("PING")
    tsrv.stop()  # asserts exit code 0 and clean sanitizer output
