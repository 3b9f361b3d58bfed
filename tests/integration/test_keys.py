"""Generic key commands: DEL/UNLINK/EXISTS, the EXPIRE family, TTL/PTTL,
PERSIST, TYPE, RENAME/RENAMENX, KEYS, SCAN, RANDOMKEY, DBSIZE/FLUSH*."""
import threading
import time

import pytest
import redis

from conftest import rawcmd, wait_for

RE = redis.exceptions.ResponseError


def err(r, *args):
    with pytest.raises(RE) as ei:
        rawcmd(r, *args)
    return str(ei.value)


# --- DEL / UNLINK / EXISTS ---------------------------------------------------

@pytest.mark.parametrize("cmd", ["DEL", "UNLINK"])
def test_del_unlink_counts(r, cmd):
    r.mset({"a": 1, "b": 2, "c": 3})
    assert rawcmd(r, cmd, "a", "nokey") == 1
    assert rawcmd(r, cmd, "b", "c", "b", "c") == 2  # duplicates count once
    assert rawcmd(r, cmd, "a") == 0
    assert r.dbsize() == 0
    assert err(r, cmd) == f"wrong number of arguments for '{cmd.lower()}' command"


def test_exists_counts_duplicates(r):
    r.set("a", 1)
    assert r.exists("a") == 1
    assert r.exists("nokey") == 0
    assert r.exists("a", "a", "nokey", "a") == 3
    assert err(r, "EXISTS") == "wrong number of arguments for 'exists' command"


def test_del_expired_key_counts_zero(r):
    r.set("k", "v", px=20)
    wait_for(lambda: r.exists("k") == 0, timeout=3)
    r.set("k2", "v", px=20)
    time.sleep(0.05)  # the key must be logically expired but maybe not reclaimed
    assert r.delete("k2") == 0


# --- EXPIRE family -----------------------------------------------------------

def test_expire_ttl_pttl(r):
    assert r.ttl("nokey") == -2
    assert r.pttl("nokey") == -2
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.pttl("k") == -1
    assert r.expire("k", 100) is True
    assert r.ttl("k") == 100
    assert 99000 < r.pttl("k") <= 100000
    assert r.pexpire("k", 50000) is True
    assert 49000 < r.pttl("k") <= 50000
    assert r.expire("nokey", 100) is False
    assert rawcmd(r, "EXPIRE", "nokey", "100") == 0
    assert rawcmd(r, "PEXPIRE", "nokey", "100") == 0


def test_expireat_pexpireat(r):
    r.set("k", "v")
    now = int(time.time())
    assert rawcmd(r, "EXPIREAT", "k", now + 200) == 1
    assert 198 <= r.ttl("k") <= 200
    assert rawcmd(r, "PEXPIREAT", "k", now * 1000 + 300000) == 1
    assert 298 <= r.ttl("k") <= 300
    assert rawcmd(r, "EXPIREAT", "nokey", now + 10) == 0


@pytest.mark.parametrize("cmd,val", [("EXPIRE", "-1"), ("EXPIRE", "0"), ("PEXPIRE", "-100"),
                                     ("EXPIREAT", "1"), ("PEXPIREAT", "1"), ("EXPIREAT", "0")])
def test_expire_in_the_past_deletes(r, cmd, val):
    r.set("k", "v")
    assert rawcmd(r, cmd, "k", val) == 1
    assert r.exists("k") == 0
    assert r.get("k") is None


def test_expire_errors(r):
    r.set("a", "1")
    assert err(r, "EXPIRE", "a", "abc") == "value is not an integer or out of range"
    assert err(r, "EXPIRE", "a", "1.5") == "value is not an integer or out of range"
    assert err(r, "EXPIRE", "a", "100", "foo") == "Unsupported option foo"
    assert err(r, "EXPIRE", "a", "9223372036854775807") == "invalid expire time in 'expire' command"
    assert err(r, "PEXPIRE", "a", "9223372036854775807") == "invalid expire time in 'pexpire' command"
    assert err(r, "EXPIREAT", "a", "9223372036854775807") == "invalid expire time in 'expireat' command"
    assert err(r, "EXPIRE", "a") == "wrong number of arguments for 'expire' command"
    assert r.ttl("a") == -1


@pytest.mark.parametrize("opts", [["NX", "XX"], ["NX", "GT"], ["NX", "LT"], ["XX", "NX"]])
def test_expire_incompatible_nx(r, opts):
    r.set("a", "1")
    assert err(r, "EXPIRE", "a", "100", *opts) == \
        "NX and XX, GT or LT options at the same time are not compatible"


def test_expire_incompatible_gt_lt(r):
    r.set("a", "1")
    assert err(r, "EXPIRE", "a", "100", "GT", "LT") == \
        "GT and LT options at the same time are not compatible"
    assert err(r, "PEXPIRE", "a", "100", "LT", "GT") == \
        "GT and LT options at the same time are not compatible"


@pytest.mark.parametrize("cmd", ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"])
def test_expire_nx_xx_gt_lt(r, cmd):
    now = int(time.time())

    def t(sec):  # argument for `sec` seconds from now in this command's unit
        return {"EXPIRE": sec, "PEXPIRE": sec * 1000, "EXPIREAT": now + sec,
                "PEXPIREAT": (now + sec) * 1000}[cmd]

    r.set("k", "v")
    # no TTL yet
    assert rawcmd(r, cmd, "k", t(100), "XX") == 0
    assert rawcmd(r, cmd, "k", t(100), "GT") == 0  # no TTL counts as infinite
    assert r.ttl("k") == -1
    assert rawcmd(r, cmd, "k", t(100), "NX") == 1
    assert 98 <= r.ttl("k") <= 100
    assert rawcmd(r, cmd, "k", t(200), "NX") == 0
    assert rawcmd(r, cmd, "k", t(200), "XX") == 1
    assert 198 <= r.ttl("k") <= 200
    assert rawcmd(r, cmd, "k", t(100), "GT") == 0
    assert rawcmd(r, cmd, "k", t(300), "GT") == 1
    assert 298 <= r.ttl("k") <= 300
    assert rawcmd(r, cmd, "k", t(400), "LT") == 0
    assert rawcmd(r, cmd, "k", t(150), "LT") == 1
    assert 148 <= r.ttl("k") <= 150
    assert rawcmd(r, cmd, "k", t(500), "XX", "GT") == 1
    assert 498 <= r.ttl("k") <= 500
    assert rawcmd(r, cmd, "k", t(50), "xx", "lt") == 1
    assert 48 <= r.ttl("k") <= 50
    # LT on a key without TTL sets it
    r.persist("k")
    assert rawcmd(r, cmd, "k", t(70), "LT") == 1
    assert 68 <= r.ttl("k") <= 70
    # options on a missing key
    assert rawcmd(r, cmd, "nokey", t(10), "NX") == 0


def test_persist(r):
    r.set("k", "v", ex=100)
    assert r.persist("k") is True
    assert r.ttl("k") == -1
    assert r.persist("k") is False
    assert r.persist("nokey") is False
    assert err(r, "PERSIST") == "wrong number of arguments for 'persist' command"


def test_ttl_rounding(r):
    r.set("k", "v", px=1500)
    assert r.ttl("k") in (1, 2)  # Redis rounds to nearest second
    r.set("k", "v", px=100400)
    assert r.ttl("k") == 100


# --- TYPE ----------------------------------------------------------------------

def test_type(r):
    r.set("s", "v")
    assert r.type("s") == b"string"
    assert r.type("nokey") == b"none"
    assert rawcmd(r, "TYPE", "s") == b"string"
    assert err(r, "TYPE") == "wrong number of arguments for 'type' command"


# --- RENAME / RENAMENX -------------------------------------------------------

def test_rename(r):
    r.set("a", "1", ex=100)
    r.set("b", "2")
    assert r.rename("a", "b") is True
    assert r.get("b") == b"1"
    assert r.exists("a") == 0
    assert 98 <= r.ttl("b") <= 100  # TTL moves with the value
    r.set("c", "3")
    assert r.rename("c", "b") is True
    assert r.ttl("b") == -1  # the old destination's TTL is gone
    assert err(r, "RENAME", "nokey", "x") == "no such key"
    assert r.rename("b", "b") is True  # same name: OK
    assert r.get("b") == b"3"
    assert err(r, "RENAME", "nokey", "nokey") == "no such key"
    assert err(r, "RENAME", "a") == "wrong number of arguments for 'rename' command"


def test_renamenx(r):
    r.set("a", "1")
    r.set("b", "2")
    assert r.renamenx("a", "b") is False
    assert r.get("a") == b"1"
    assert r.renamenx("a", "c") is True
    assert r.get("c") == b"1"
    assert r.exists("a") == 0
    assert rawcmd(r, "RENAMENX", "c", "c") == 0
    assert err(r, "RENAMENX", "nokey", "x") == "no such key"


def test_rename_to_expired_destination(r):
    r.set("a", "1")
    r.set("b", "2", px=20)
    wait_for(lambda: r.exists("b") == 0, timeout=3)
    assert r.renamenx("a", "b") is True
    assert r.get("b") == b"1"


# --- KEYS --------------------------------------------------------------------

KEY_SET = [b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"hillo", b"h*llo", b"h?llo",
           b"h[a]llo", b"h\\llo", b"foo", b"foobar", b"bar", b"a-b", b"x", b"", b"\x00bin\xff"]


@pytest.fixture
def keyset(r):
    r.mset({k: b"v" for k in KEY_SET})
    return r


@pytest.mark.parametrize("pattern,expected", [
    (b"*", KEY_SET),
    (b"h?llo", [b"hello", b"hallo", b"hxllo", b"hillo", b"h*llo", b"h?llo", b"h\\llo"]),
    (b"h*llo", [b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"hillo", b"h*llo",
                b"h?llo", b"h[a]llo", b"h\\llo"]),
    (b"h[ae]llo", [b"hello", b"hallo"]),
    (b"h[^e]llo", [b"hallo", b"hxllo", b"hillo", b"h*llo", b"h?llo", b"h\\llo"]),
    (b"h[a-i]llo", [b"hello", b"hallo", b"hillo"]),
    (b"h[i-a]llo", [b"hello", b"hallo", b"hillo"]),  # reversed ranges are swapped
    (b"h\\*llo", [b"h*llo"]),
    (b"h\\?llo", [b"h?llo"]),
    (b"h\\[a]llo", [b"h[a]llo"]),
    (b"h\\\\llo", [b"h\\llo"]),
    (b"foo*", [b"foo", b"foobar"]),
    (b"*bar", [b"foobar", b"bar"]),
    (b"*o*", [b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"hillo", b"h*llo",
              b"h?llo", b"h[a]llo", b"h\\llo", b"foo", b"foobar"]),
    (b"?", [b"x"]),
    (b"a[-]b", [b"a-b"]),
    (b"nomatch*", []),
    (b"", [b""]),
    (b"\x00*", [b"\x00bin\xff"]),
    (b"FOO", []),  # case sensitive
])
def test_keys_patterns(keyset, pattern, expected):
    assert sorted(keyset.keys(pattern)) == sorted(expected)


def test_keys_skips_expired(r):
    r.set("live", 1)
    r.set("dead", 1, px=20)
    wait_for(lambda: r.keys("*") == [b"live"], timeout=3)


# --- SCAN --------------------------------------------------------------------

def full_scan(r, **kw):
    cursor, seen, calls = 0, [], 0
    while True:
        cursor, keys = r.scan(cursor, **kw)
        seen.extend(keys)
        calls += 1
        assert calls < 100000
        if cursor == 0:
            return seen, calls


def test_scan_returns_every_key(r):
    keys = {b"key:%d" % i for i in range(1500)}
    p = r.pipeline(transaction=False)
    for k in keys:
        p.set(k, b"v")
    p.execute()
    for count in (None, 1, 10, 100, 1000, 10000):
        seen, calls = full_scan(r, count=count)
        assert set(seen) == keys, f"count={count}: missing {len(keys - set(seen))}"
        if count == 10000:
            assert calls <= 3


def test_scan_match(r):
    p = r.pipeline(transaction=False)
    for i in range(1200):
        p.set(b"user:%d" % i, b"v")
        p.set(b"item:%d" % i, b"v")
    p.execute()
    seen, _ = full_scan(r, match=b"user:*", count=50)
    assert set(seen) == {b"user:%d" % i for i in range(1200)}
    seen, _ = full_scan(r, match=b"item:1?", count=7)
    assert set(seen) == {b"item:%d" % i for i in range(10, 20)}
    seen, _ = full_scan(r, match=b"none*")
    assert seen == []


def test_scan_type(r):
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set(b"s:%d" % i, b"v")
    p.execute()
    seen, _ = full_scan(r, _type="string", count=100)
    assert set(seen) == {b"s:%d" % i for i in range(1000)}
    seen, _ = full_scan(r, _type="STRING", match=b"s:99*", count=100)
    assert set(seen) == {b"s:99", b"s:990", b"s:991", b"s:992", b"s:993", b"s:994",
                         b"s:995", b"s:996", b"s:997", b"s:998", b"s:999"}
    seen, _ = full_scan(r, _type="list", count=100)
    assert seen == []
    # each type's name comes from its registered ops (src/types/<type>/)
    r.xadd("st", {"f": "v"})
    seen, _ = full_scan(r, _type="stream", count=100)
    assert seen == [b"st"]
    seen, _ = full_scan(r, _type="String", match=b"st*", count=100)
    assert seen == []
    seen, _ = full_scan(r, _type="none", count=100)
    assert seen == []


def test_scan_while_adding_keys(r, server):
    initial = {b"init:%d" % i for i in range(2000)}
    p = r.pipeline(transaction=False)
    for k in initial:
        p.set(k, b"v")
    p.execute()
    stop = threading.Event()
    added = []

    def writer():
        w = server.client()
        i = 0
        while not stop.is_set() and i < 20000:
            pw = w.pipeline(transaction=False)
            for _ in range(100):
                pw.set(b"new:%d" % i, b"v")
                i += 1
            pw.execute()
        added.append(i)
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen, _ = full_scan(r, count=20)
    finally:
        stop.set()
        t.join(30)
    missing = initial - set(seen)
    assert not missing, f"SCAN missed {len(missing)} keys present from the start, e.g. {sorted(missing)[:5]}"
    assert added and added[0] > 0


def test_scan_errors(r):
    assert err(r, "SCAN", "abc") == "invalid cursor"
    assert err(r, "SCAN", "18446744073709551616") == "invalid cursor"
    assert err(r, "SCAN", "0", "MATCH") == "syntax error"
    assert err(r, "SCAN", "0", "COUNT", "0") == "syntax error"
    assert err(r, "SCAN", "0", "COUNT", "abc") == "value is not an integer or out of range"
    assert err(r, "SCAN", "0", "FOO", "bar") == "syntax error"
    assert err(r, "SCAN") == "wrong number of arguments for 'scan' command"


def test_scan_empty_db(r):
    assert rawcmd(r, "SCAN", "0") == [b"0", []]


# --- RANDOMKEY / DBSIZE / FLUSH ----------------------------------------------

def test_randomkey(r):
    assert r.randomkey() is None
    r.set("only", 1)
    assert r.randomkey() == b"only"
    names = {b"k%d" % i for i in range(20)}
    r.mset({k: 1 for k in names})
    seen = {r.randomkey() for _ in range(200)}
    assert seen <= names | {b"only"}
    assert len(seen) > 1


def test_dbsize_flushall_flushdb(r):
    assert r.dbsize() == 0
    r.mset({"a": 1, "b": 2})
    r.set("c", 3, ex=100)
    assert r.dbsize() == 3
    assert r.flushdb() is True
    assert r.dbsize() == 0
    r.mset({"a": 1, "b": 2})
    assert r.flushall() is True
    assert r.dbsize() == 0
    assert r.get("a") is None
    assert rawcmd(r, "FLUSHALL", "SYNC") == b"OK"
    assert rawcmd(r, "FLUSHDB", "ASYNC") == b"OK"
    assert err(r, "FLUSHALL", "FOO") == "syntax error"
    assert err(r, "DBSIZE", "x") == "wrong number of arguments for 'dbsize' command"


def test_flushall_clears_expires(r):
    r.set("a", 1, ex=100)
    r.flushall()
    r.set("a", 1)
    assert r.ttl("a") == -1
