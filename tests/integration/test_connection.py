"""Connection and server commands: PING ECHO QUIT SELECT TIME HELLO CLIENT
INFO CONFIG COMMAND."""
import time

import pytest
import redis

from conftest import IS_REDIS, Map, encode_command, parse_reply, pier_only, rawcmd, wait_for

RE = redis.exceptions.ResponseError


def err(r, *args):
    with pytest.raises(RE) as ei:
        rawcmd(r, *args)
    return str(ei.value)


# --- PING / ECHO / QUIT / SELECT / TIME -------------------------------------

def test_ping(r, raw):
    assert r.ping() is True
    assert rawcmd(r, "PING") == b"PONG"
    assert rawcmd(r, "PING", "hello world") == b"hello world"
    assert rawcmd(r, "PING", "") == b""
    assert err(r, "PING", "a", "b") == "wrong number of arguments for 'ping' command"
    c = raw()
    assert c.cmd("PING") == b"+PONG\r\n"
    assert c.cmd("PING", "x\r\ny") == b"$4\r\nx\r\ny\r\n"
    assert c.cmd("ping") == b"+PONG\r\n"
    assert c.cmd("pInG") == b"+PONG\r\n"


def test_echo(r, raw):
    assert r.echo("hi") == b"hi"
    assert r.echo(b"\x00\xff\r\n") == b"\x00\xff\r\n"
    assert err(r, "ECHO") == "wrong number of arguments for 'echo' command"
    assert err(r, "ECHO", "a", "b") == "wrong number of arguments for 'echo' command"
    assert raw().cmd("ECHO", "") == b"$0\r\n\r\n"


def test_quit(raw):
    c = raw()
    c.send(b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n")
    data, closed = c.read_until_closed(5)
    assert closed
    assert data == b"+OK\r\n"  # nothing after QUIT is executed


def test_quit_inline(raw):
    c = raw()
    c.send(b"QUIT\r\n")
    data, closed = c.read_until_closed(5)
    assert closed and data == b"+OK\r\n"


def test_select_0(r, raw):
    assert rawcmd(r, "SELECT", "0") == b"OK"
    assert raw().cmd("SELECT", "0") == b"+OK\r\n"
    assert err(r, "SELECT", "abc") == "value is not an integer or out of range"
    assert err(r, "SELECT", "-1") == "DB index is out of range"
    assert err(r, "SELECT", "100000") == "DB index is out of range"
    assert err(r, "SELECT") == "wrong number of arguments for 'select' command"


@pier_only
def test_select_nonzero_is_error_in_pier(r, raw):
    assert err(r, "SELECT", "1") == "DB index is out of range"
    assert raw().cmd("SELECT", "1") == b"-ERR DB index is out of range\r\n"
    # still on db 0
    r.set("k", "v")
    assert r.get("k") == b"v"


def test_time(r):
    sec, usec = rawcmd(r, "TIME")
    assert isinstance(sec, bytes) and isinstance(usec, bytes)
    assert abs(int(sec) - time.time()) < 5
    assert 0 <= int(usec) < 1000000
    s2, u2 = rawcmd(r, "TIME")
    assert (int(s2), int(u2)) >= (int(sec), int(usec))
    assert err(r, "TIME", "x") == "wrong number of arguments for 'time' command"


# --- HELLO -------------------------------------------------------------------

def _hello_fields(reply):
    if isinstance(reply, Map):
        return dict(reply)
    return dict(zip(reply[::2], reply[1::2]))


def test_hello_2(raw):
    c = raw()
    rep = c.cmd("HELLO", "2")
    assert rep.startswith(b"*14\r\n"), rep
    f = _hello_fields(parse_reply(rep)[0])
    # pier names itself; clients feature-check "version" (Redis 7.0 level)
    assert f[b"server"] == (b"redis" if IS_REDIS else b"pier")
    assert f[b"proto"] == 2
    assert isinstance(f[b"id"], int) and f[b"id"] > 0
    assert f[b"mode"] == b"standalone"
    assert f[b"role"] == b"master"
    assert f[b"modules"] == []
    assert f[b"version"].count(b".") == 2
    assert c.cmd("GET", "nokey") == b"$-1\r\n"


def test_hello_no_args_keeps_protocol(raw):
    c = raw()
    rep = c.cmd("HELLO")
    assert rep.startswith(b"*"), rep  # exact shapes: test_hello_2 / test_hello_3_raw
    c.cmd("HELLO", "3")
    rep = c.cmd("HELLO")
    assert rep.startswith(b"%"), rep


def test_hello_3_raw(raw):
    c = raw()
    rep = c.cmd("HELLO", "3")
    assert rep.startswith(b"%7\r\n"), rep
    assert b"$5\r\nproto\r\n:3\r\n" in rep
    assert b"$7\r\nmodules\r\n*0\r\n" in rep
    f = dict(parse_reply(rep)[0])
    assert f[b"server"] == (b"redis" if IS_REDIS else b"pier") and f[b"proto"] == 3
    # RESP3 shapes
    assert c.cmd("GET", "nokey") == b"_\r\n"
    assert c.cmd("SET", "k", "v") == b"+OK\r\n"
    assert c.cmd("GET", "k") == b"$1\r\nv\r\n"
    assert c.cmd("MGET", "k", "nokey") == b"*2\r\n$1\r\nv\r\n_\r\n"
    assert c.cmd("SET", "k", "v", "NX") == b"_\r\n"
    assert c.cmd("EXISTS", "k") == b":1\r\n"
    assert c.cmd("INCRBYFLOAT", "f", "1.5") == b"$3\r\n1.5\r\n"
    cfg = c.cmd("CONFIG", "GET", "maxclients")
    assert cfg.startswith(b"%1\r\n$10\r\nmaxclients\r\n"), cfg
    # back to RESP2
    assert c.cmd("HELLO", "2").startswith(b"*14\r\n")
    assert c.cmd("GET", "nokey") == b"$-1\r\n"


def test_hello_errors(raw):
    c = raw()
    assert c.cmd("HELLO", "4") == b"-NOPROTO unsupported protocol version\r\n"
    assert c.cmd("HELLO", "1") == b"-NOPROTO unsupported protocol version\r\n"
    assert c.cmd("HELLO", "abc") == b"-ERR Protocol version is not an integer or out of range\r\n"
    assert c.cmd("PING") == b"+PONG\r\n"


def test_hello_setname(raw):
    c = raw()
    rep = c.cmd("HELLO", "3", "SETNAME", "myname")
    assert rep.startswith(b"%"), rep  # the exact shape is checked in test_hello_3_raw
    assert c.cmd("CLIENT", "GETNAME") == b"$6\r\nmyname\r\n"


# --- CLIENT ------------------------------------------------------------------

def test_client_setname_getname(r, raw):
    assert rawcmd(r, "CLIENT", "GETNAME") is None
    assert rawcmd(r, "CLIENT", "SETNAME", "worker-1") == b"OK"
    assert rawcmd(r, "CLIENT", "GETNAME") == b"worker-1"
    assert rawcmd(r, "CLIENT", "SETNAME", "") == b"OK"
    assert rawcmd(r, "CLIENT", "GETNAME") is None
    msg = "Client names cannot contain spaces, newlines or special characters."
    assert err(r, "CLIENT", "SETNAME", "a b") == msg
    assert err(r, "CLIENT", "SETNAME", "a\nb") == msg
    assert err(r, "CLIENT", "SETNAME") == "wrong number of arguments for 'client|setname' command"
    c = raw()
    assert c.cmd("CLIENT", "GETNAME") == b"$-1\r\n"
    assert c.cmd("CLIENT", "SETNAME", "x") == b"+OK\r\n"
    assert c.cmd("CLIENT", "GETNAME") == b"$1\r\nx\r\n"


def test_client_id_unique_and_increasing(server):
    a, b = server.client(), server.client()
    ia, ib = rawcmd(a, "CLIENT", "ID"), rawcmd(b, "CLIENT", "ID")
    assert isinstance(ia, int) and isinstance(ib, int)
    assert ia > 0 and ib > ia
    assert rawcmd(a, "CLIENT", "ID") == ia


def test_client_list(server):
    a, b = server.client(), server.client()
    rawcmd(a, "CLIENT", "SETNAME", "alpha")
    rawcmd(b, "CLIENT", "SETNAME", "beta")
    ida = rawcmd(a, "CLIENT", "ID")
    text = rawcmd(a, "CLIENT", "LIST")
    assert isinstance(text, bytes) and text.endswith(b"\n")
    lines = text.decode().strip("\n").split("\n")
    entries = [dict(kv.split("=", 1) for kv in line.split(" ")) for line in lines]
    by_name = {e["name"]: e for e in entries}
    assert "alpha" in by_name and "beta" in by_name
    me = by_name["alpha"]
    assert int(me["id"]) == ida
    host, port = me["addr"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert me["laddr"] == f"127.0.0.1:{server.port}"
    for field in ("id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "cmd", "resp"):
        assert field in me, field
    assert me["cmd"] == "client|list"
    assert me["db"] == "0"
    # redis-py parses it
    parsed = a.client_list()
    assert any(e["name"] == "beta" for e in parsed)
    # CLIENT LIST ID
    only = rawcmd(a, "CLIENT", "LIST", "ID", str(ida)).decode().strip("\n").split("\n")
    assert len(only) == 1 and f"id={ida} " in only[0] + " "
    assert err(a, "CLIENT", "LIST", "ID", "abc") == "Invalid client ID"


def _addr_of(server, client):
    cid = rawcmd(client, "CLIENT", "ID")
    for line in rawcmd(client, "CLIENT", "LIST").decode().strip("\n").split("\n"):
        e = dict(kv.split("=", 1) for kv in line.split(" "))
        if int(e["id"]) == cid:
            return cid, e["addr"]
    raise AssertionError("own id not in CLIENT LIST")


def test_client_kill_by_id(server, raw):
    killer = server.client()
    victim = raw()
    assert victim.cmd("PING") == b"+PONG\r\n"
    victim_id = int(victim.cmd("CLIENT", "ID")[1:-2])
    assert rawcmd(killer, "CLIENT", "KILL", "ID", str(victim_id)) == 1
    assert victim.is_closed(5), "victim connection not closed after CLIENT KILL ID"
    assert rawcmd(killer, "CLIENT", "KILL", "ID", str(victim_id)) == 0
    assert err(killer, "CLIENT", "KILL", "ID", "abc") == "client-id should be greater than 0"
    ids = [int(e["id"]) for e in killer.client_list()]
    assert victim_id not in ids


def test_client_kill_by_addr(server, raw):
    killer = server.client()
    victim = raw()
    victim_id = int(victim.cmd("CLIENT", "ID")[1:-2])
    addr = next(e["addr"] for e in killer.client_list() if int(e["id"]) == victim_id)
    assert rawcmd(killer, "CLIENT", "KILL", "ADDR", addr) == 1
    assert victim.is_closed(5)
    # old form: CLIENT KILL ip:port -> +OK / error
    victim2 = raw()
    vid2 = int(victim2.cmd("CLIENT", "ID")[1:-2])
    addr2 = next(e["addr"] for e in killer.client_list() if int(e["id"]) == vid2)
    assert rawcmd(killer, "CLIENT", "KILL", addr2) == b"OK"
    assert victim2.is_closed(5)
    assert err(killer, "CLIENT", "KILL", addr2) == "No such client"
    assert rawcmd(killer, "CLIENT", "KILL", "ADDR", "1.2.3.4:5") == 0
    assert killer.ping()


def test_client_kill_skipme(server):
    c = server.client()
    cid, addr = _addr_of(server, c)
    assert rawcmd(c, "CLIENT", "KILL", "ID", str(cid), "SKIPME", "yes") == 0
    assert rawcmd(c, "CLIENT", "KILL", "ADDR", addr, "SKIPME", "yes") == 0
    assert c.ping()


def test_client_kill_self(server, raw):
    c = raw()
    cid = int(c.cmd("CLIENT", "ID")[1:-2])
    c.send(b"CLIENT KILL ID %d SKIPME no\r\n" % cid)
    data, closed = c.read_until_closed(5)
    assert closed
    assert data in (b"", b":1\r\n")


def test_client_unknown_subcommand(r):
    assert err(r, "CLIENT", "FOO") == "unknown subcommand 'FOO'. Try CLIENT HELP."
    assert err(r, "CLIENT") == "wrong number of arguments for 'client' command"


# --- INFO ----------------------------------------------------------------------

def test_info_default_sections(r, server):
    text = rawcmd(r, "INFO").decode()
    for section in ("Server", "Clients", "Memory", "Stats", "Keyspace"):
        assert f"# {section}\r\n" in text, section
    info = r.info()
    assert info["redis_version"].count(".") == 2
    assert info["tcp_port"] == server.port
    assert info["uptime_in_seconds"] >= 0
    assert info["connected_clients"] >= 1
    assert info["used_memory"] > 0
    assert "used_memory_human" in info
    assert info["total_connections_received"] >= 1
    assert info["total_commands_processed"] >= 1
    for f in ("keyspace_hits", "keyspace_misses", "expired_keys", "instantaneous_ops_per_sec"):
        assert f in info, f
    assert info["process_id"] == server.proc.pid


@pytest.mark.parametrize("section,field", [("server", "redis_version"), ("clients", "connected_clients"),
                                           ("memory", "used_memory"), ("stats", "total_commands_processed"),
                                           ("keyspace", None)])
def test_info_single_section(r, section, field):
    r.set("k", "v")
    text = rawcmd(r, "INFO", section).decode()
    assert text.startswith("# " + section.capitalize() + "\r\n"), text[:80]
    assert text.count("# ") == 1
    info = r.info(section)
    if field:
        assert field in info
    else:
        assert info["db0"]["keys"] == 1


def test_info_counts_clients(server):
    base = server.client()
    n0 = base.info("clients")["connected_clients"]
    extra = [server.raw() for _ in range(3)]
    for c in extra:
        assert c.cmd("PING") == b"+PONG\r\n"
    assert base.info("clients")["connected_clients"] == n0 + 3
    for c in extra:
        c.close()
    wait_for(lambda: base.info("clients")["connected_clients"] == n0, timeout=5)


def test_info_hits_misses(r):
    s0 = r.info("stats")
    r.set("k", "v")
    r.get("k")
    r.get("k")
    r.get("nokey")
    s1 = r.info("stats")
    assert s1["keyspace_hits"] - s0["keyspace_hits"] == 2
    assert s1["keyspace_misses"] - s0["keyspace_misses"] == 1


def test_info_unknown_section_is_empty(r):
    assert rawcmd(r, "INFO", "nosuchsection") == b""


# --- CONFIG ------------------------------------------------------------------

def test_config_get(r):
    assert rawcmd(r, "CONFIG", "GET", "maxclients") == [b"maxclients", b"10000"]
    flat = rawcmd(r, "CONFIG", "GET", "timeout")
    assert flat == [b"timeout", b"0"]
    assert rawcmd(r, "CONFIG", "GET", "nosuchoption") == []
    got = r.config_get("max*")
    assert "maxclients" in got
    assert all(k.startswith("max") for k in got)
    many = rawcmd(r, "CONFIG", "GET", "port", "timeout")
    d = dict(zip(many[::2], many[1::2]))
    assert set(d) == {b"port", b"timeout"}
    assert err(r, "CONFIG", "GET") == "wrong number of arguments for 'config|get' command"


def test_config_get_port(r, server):
    assert rawcmd(r, "CONFIG", "GET", "port") == [b"port", str(server.port).encode()]


def test_config_set_maxclients(fresh_server):
    c = fresh_server.client()
    assert c.config_set("maxclients", "50") is True
    assert rawcmd(c, "CONFIG", "GET", "maxclients") == [b"maxclients", b"50"]
    assert c.config_set("maxclients", "10000") is True
    with pytest.raises(RE) as ei:
        rawcmd(c, "CONFIG", "SET", "maxclients", "abc")
    assert "maxclients" in str(ei.value)
    assert str(ei.value).startswith("CONFIG SET failed (possibly related to argument 'maxclients')")
    with pytest.raises(RE) as ei:
        rawcmd(c, "CONFIG", "SET", "nosuchoption", "1")
    assert str(ei.value) == "Unknown option or number of arguments for CONFIG SET - 'nosuchoption'"


def test_maxclients_enforced(fresh_server):
    c = fresh_server.client()
    # The fixture's start-up probe may not be reaped yet: count from one.
    wait_for(lambda: c.info("clients")["connected_clients"] == 1, timeout=5)
    c.config_set("maxclients", "3")
    conns = [fresh_server.raw() for _ in range(2)]
    for x in conns:
        assert x.cmd("PING") == b"+PONG\r\n"
    over = fresh_server.raw()
    data, closed = over.read_until_closed(5)
    assert closed
    assert data == b"-ERR max number of clients reached\r\n"
    conns[0].close()
    wait_for(lambda: c.info("clients")["connected_clients"] == 2, timeout=5)
    again = fresh_server.raw()
    assert again.cmd("PING") == b"+PONG\r\n"


def test_config_set_timeout_disconnects_idle(fresh_server):
    c = fresh_server.client()
    assert c.config_set("timeout", "1") is True
    assert rawcmd(c, "CONFIG", "GET", "timeout") == [b"timeout", b"1"]
    idle = fresh_server.raw()
    assert idle.cmd("PING") == b"+PONG\r\n"
    assert idle.is_closed(6), "idle client not disconnected with timeout 1"
    # `c` was idle too and may be gone now: use a new connection
    fresh = fresh_server.raw()
    assert fresh.cmd("CONFIG", "SET", "timeout", "0") == b"+OK\r\n"
    assert fresh.cmd("PING") == b"+PONG\r\n"


# --- COMMAND -------------------------------------------------------------------

def test_command_count(r):
    n = rawcmd(r, "COMMAND", "COUNT")
    assert isinstance(n, int) and n >= 40


def test_command_info_get(r):
    rep = rawcmd(r, "COMMAND", "INFO", "get")
    assert len(rep) == 1
    e = rep[0]
    assert e[0] == b"get"
    assert e[1] == 2
    assert set(e[2]) >= {b"readonly", b"fast"}
    assert e[3:6] == [1, 1, 1]
    assert b"@string" in e[6] and b"@read" in e[6]
    rep = rawcmd(r, "COMMAND", "INFO", "set", "nosuchcmd", "MGET")
    assert rep[0][0] == b"set" and rep[0][1] == -3
    assert rep[1] is None
    assert rep[2][0] == b"mget" and rep[2][1] == -2 and rep[2][3:6] == [1, -1, 1]


def test_command_docs_get(r):
    rep = rawcmd(r, "COMMAND", "DOCS", "get")
    assert rep[0] == b"get"
    doc = dict(zip(rep[1][::2], rep[1][1::2]))
    assert doc[b"summary"] == b"Get the value of a key"
    assert doc[b"since"] == b"1.0.0"
    assert doc[b"group"] == b"string"
    assert rawcmd(r, "COMMAND", "DOCS", "nosuchcmd") == []


def test_command_lists_supported(r):
    table = rawcmd(r, "COMMAND")
    names = {e[0] for e in table}
    assert len(table) == rawcmd(r, "COMMAND", "COUNT")
    for name in ("get", "set", "del", "scan", "expire", "ping", "hello", "client", "config", "info"):
        assert name.encode() in names, name


def test_unknown_command_and_subcommand(r):
    assert err(r, "NOSUCH", "a", "b") == \
        "unknown command 'NOSUCH', with args beginning with: 'a' 'b' "
    assert err(r, "COMMAND", "FOO") == "unknown subcommand 'FOO'. Try COMMAND HELP."
    assert err(r, "CONFIG", "FOO") == "unknown subcommand 'FOO'. Try CONFIG HELP."


def test_timeout_spares_active_clients(fresh_server):
    c = fresh_server.raw()
    assert c.cmd("CONFIG", "SET", "timeout", "1") == b"+OK\r\n"
    end = time.monotonic() + 3
    while time.monotonic() < end:  # never idle for more than 0.3 s
        assert c.cmd("PING") == b"+PONG\r\n"
        time.sleep(0.3)
    assert c.cmd("CONFIG", "SET", "timeout", "0") == b"+OK\r\n"


def test_timeout_spares_slow_senders(fresh_server):
    """Issue 12, item 10: as in Redis, every byte received is activity. A
    client that sends a command one byte every 0.3 s for 3 s (timeout 1) is
    not closed and gets its reply; an idle one is closed."""
    ctl = fresh_server.raw()
    assert ctl.cmd("CONFIG", "SET", "timeout", "1") == b"+OK\r\n"
    idle = fresh_server.raw()
    assert idle.cmd("PING") == b"+PONG\r\n"
    slow = fresh_server.raw()
    slow.send_slowly(encode_command("ECHO", "slowly"), every=0.3, for_s=3.0)
    assert slow.read_reply() == b"slowly"
    assert idle.is_closed(5), "idle client not disconnected with timeout 1"


def test_info_multiple_sections(fresh_server):
    # own server: a crash here must not take the module's server down
    server = fresh_server
    r = server.client()
    text = rawcmd(r, "INFO", "server", "clients").decode()
    assert "# Server\r\n" in text and "# Clients\r\n" in text
    assert "# Memory" not in text and "# Keyspace" not in text
    text = rawcmd(r, "INFO", "keyspace", "nosuchsection").decode()
    assert text.startswith("# Keyspace\r\n")
    text = rawcmd(r, "INFO", "stats", "memory", "server", "clients", "keyspace").decode()
    for s in ("Server", "Clients", "Memory", "Stats", "Keyspace"):
        assert f"# {s}\r\n" in text, s
    from conftest import assert_server_alive
    assert_server_alive(server, "after INFO with several sections")


@pytest.mark.parametrize("arg", ["all", "everything", "default", "SERVER"])
def test_info_special_arguments(r, arg):
    text = rawcmd(r, "INFO", arg).decode()
    assert "# Server\r\n" in text
    if arg != "SERVER":
        for s in ("Clients", "Memory", "Stats", "Keyspace"):
            assert f"# {s}\r\n" in text, s


def test_hello_invalid_setname_is_refused(raw):
    c = raw()
    c.send(b'HELLO 3 SETNAME "a b"\r\nGET nokey\r\nCLIENT GETNAME\r\n')
    assert c.read_reply_raw() == b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    assert c.read_reply_raw() == b"$-1\r\n"  # the protocol was not switched to RESP3
    assert c.read_reply_raw() == b"$-1\r\n"  # and no name was set


def _client_entry(text, cid):
    for line in text.decode().strip("\n").split("\n"):
        e = dict(kv.split("=", 1) for kv in line.split(" "))
        if int(e["id"]) == cid:
            return e
    return None


def _q(conn, *args):
    return parse_reply(conn.cmd(*args), 0)[0]


def test_client_list_sub_psub_flags_and_info_counts(server, raw):
    """CLIENT LIST sub=/psub=/flags= (N, P in pub/sub mode, b blocked in
    XREAD) and INFO blocked_clients (clients) / pubsub_channels and
    pubsub_patterns (stats), as Redis 7.0 prints them."""
    me, sub, blk = raw(), raw(), raw()
    my_id, sub_id, blk_id = _q(me, "CLIENT", "ID"), _q(sub, "CLIENT", "ID"), _q(blk, "CLIENT", "ID")
    sub.send(encode_command("SUBSCRIBE", "pl-a", "pl-b"))
    sub.read_reply(), sub.read_reply()
    sub.cmd("PSUBSCRIBE", "pl-x*")
    blk.send(encode_command("XREAD", "BLOCK", "0", "STREAMS", "pl-s", "$"))

    def listed():
        text = _q(me, "CLIENT", "LIST")
        e = _client_entry(text, blk_id)
        return text if e and e["flags"] == "b" else None

    text = wait_for(listed, msg="blocked client shown with flags=b")
    s, b, m = (_client_entry(text, i) for i in (sub_id, blk_id, my_id))
    assert (s["flags"], s["sub"], s["psub"]) == ("P", "2", "1")
    assert (b["flags"], b["sub"], b["psub"]) == ("b", "0", "0")
    assert b["cmd"] == "xread"
    assert (m["flags"], m["sub"], m["psub"]) == ("N", "0", "0")

    def info(section="everything"):
        text = _q(me, "INFO", section).decode()
        return dict(l.split(":", 1) for l in text.split("\r\n") if ":" in l)

    assert info("clients")["blocked_clients"] == "1"
    stats = info("stats")
    assert (stats["pubsub_channels"], stats["pubsub_patterns"]) == ("2", "1")

    # unsubscribing and unblocking bring everything back to zero / N
    sub.send(encode_command("UNSUBSCRIBE"))
    sub.read_reply(), sub.read_reply()
    sub.cmd("PUNSUBSCRIBE")
    me.cmd("XADD", "pl-s", "*", "f", "v")
    blk.read_reply()
    fields = wait_for(lambda: (lambda f: f if f["blocked_clients"] == "0" else None)(info()))
    assert (fields["pubsub_channels"], fields["pubsub_patterns"]) == ("0", "0")
    text = _q(me, "CLIENT", "LIST")
    s, b = _client_entry(text, sub_id), _client_entry(text, blk_id)
    assert (s["flags"], s["sub"], s["psub"]) == ("N", "0", "0")
    assert b["flags"] == "N"
    me.cmd("DEL", "pl-s")
