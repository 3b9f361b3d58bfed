"""String commands: every option and the edge cases, checked through redis-py.
(WRONGTYPE is not tested here: no other type can be created yet.)"""
import time

import pytest
import redis

from conftest import rawcmd, wait_for

RE = redis.exceptions.ResponseError


def err(r, *args):
    """Run a raw command that must fail; return the error text (without 'ERR ')."""
    with pytest.raises(RE) as ei:
        rawcmd(r, *args)
    return str(ei.value)


# --- GET / SET basics --------------------------------------------------------

def test_get_missing_and_set_get(r):
    assert r.get("nokey") is None
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"
    assert r.set("k", "v2") is True
    assert r.get("k") == b"v2"


def test_set_empty_value_and_empty_key(r):
    assert r.set("", "") is True
    assert r.get("") == b""
    assert r.strlen("") == 0
    assert r.exists("") == 1


def test_set_overwrites_ttl(r):
    r.set("k", "v", ex=100)
    assert r.ttl("k") > 0
    r.set("k", "v2")
    assert r.ttl("k") == -1


def test_set_nx_xx(r):
    assert r.set("k", "1", nx=True) is True
    assert r.set("k", "2", nx=True) is None
    assert r.get("k") == b"1"
    assert r.set("k", "3", xx=True) is True
    assert r.get("k") == b"3"
    assert r.set("missing", "x", xx=True) is None
    assert r.exists("missing") == 0


def test_set_nx_and_xx_together_is_syntax_error(r):
    assert err(r, "SET", "k", "v", "NX", "XX") == "syntax error"


@pytest.mark.parametrize("opt", ["EX", "PX", "EXAT", "PXAT"])
def test_set_expire_options(r, opt):
    now_ms = int(time.time() * 1000)
    val = {"EX": 100, "PX": 100000, "EXAT": now_ms // 1000 + 100, "PXAT": now_ms + 100000}[opt]
    assert rawcmd(r, "SET", "k", "v", opt, val) == b"OK"
    ttl = r.pttl("k")
    assert 90000 < ttl <= 100000
    assert r.get("k") == b"v"


@pytest.mark.parametrize("opt", ["EX", "PX", "EXAT", "PXAT"])
@pytest.mark.parametrize("val", ["0", "-1", "abc", "1.5"])
def test_set_invalid_expire(r, opt, val):
    msg = err(r, "SET", "k", "v", opt, val)
    if val in ("abc", "1.5"):
        assert msg == "value is not an integer or out of range"
    else:
        assert msg == "invalid expire time in 'set' command"
    assert r.exists("k") == 0


def test_set_expire_overflow(r):
    assert err(r, "SET", "k", "v", "EX", "9223372036854775807") == "invalid expire time in 'set' command"
    assert err(r, "SET", "k", "v", "PX", "9223372036854775807") == "invalid expire time in 'set' command"
    assert err(r, "SET", "k", "v", "EX", "99999999999999999999") == "value is not an integer or out of range"


@pytest.mark.parametrize("combo", [
    ["EX", "10", "PX", "10000"], ["EX", "10", "EXAT", "99999999999"], ["PX", "10", "PXAT", "99999999999999"],
    ["EX", "10", "KEEPTTL"], ["KEEPTTL", "PX", "10"], ["EXAT", "99999999999", "KEEPTTL"],
    ["EX"], ["PX"], ["EXAT"], ["PXAT"], ["FOO"], ["NX", "NX", "XX"], ["EX", "10", "EX", "20", "PX", "1"],
])
def test_set_syntax_errors(r, combo):
    assert err(r, "SET", "k", "v", *combo) == "syntax error"
    assert r.exists("k") == 0


def test_set_options_case_insensitive_and_repeated(r):
    assert rawcmd(r, "SET", "k", "v", "ex", "100", "nx") == b"OK"
    assert r.ttl("k") == 100
    # repeating the same flag is allowed
    assert rawcmd(r, "SET", "k", "v2", "XX", "XX") == b"OK"
    assert rawcmd(r, "SET", "k", "v3", "EX", "10", "EX", "20") == b"OK"


def test_set_expat_in_the_past_deletes(r):
    r.set("k", "old")
    assert rawcmd(r, "SET", "k", "v", "EXAT", "1") == b"OK"
    assert r.exists("k") == 0
    assert r.get("k") is None
    assert rawcmd(r, "SET", "k2", "v", "PXAT", "1") == b"OK"
    assert r.exists("k2") == 0
    assert r.dbsize() == 0


def test_set_keepttl(r):
    r.set("k", "v", ex=1000)
    assert rawcmd(r, "SET", "k", "v2", "KEEPTTL") == b"OK"
    assert r.get("k") == b"v2"
    assert 990 <= r.ttl("k") <= 1000
    r.set("k", "v3")
    assert r.ttl("k") == -1
    # KEEPTTL on a key without TTL, and on a new key
    assert rawcmd(r, "SET", "k", "v4", "KEEPTTL") == b"OK"
    assert r.ttl("k") == -1
    assert rawcmd(r, "SET", "new", "v", "KEEPTTL") == b"OK"
    assert r.ttl("new") == -1


def test_set_keepttl_with_nx_xx(r):
    r.set("k", "v", ex=1000)
    assert rawcmd(r, "SET", "k", "v2", "KEEPTTL", "XX") == b"OK"
    assert r.ttl("k") > 990
    assert rawcmd(r, "SET", "k", "v3", "KEEPTTL", "NX") is None
    assert r.get("k") == b"v2"


def test_set_get_option(r):
    assert rawcmd(r, "SET", "k", "v1", "GET") is None
    assert r.get("k") == b"v1"
    assert rawcmd(r, "SET", "k", "v2", "GET") == b"v1"
    assert r.get("k") == b"v2"


def test_set_get_with_nx_xx(r):
    # Redis 7.0 allows GET with NX
    assert rawcmd(r, "SET", "k", "v1", "NX", "GET") is None
    assert r.get("k") == b"v1"
    assert rawcmd(r, "SET", "k", "v2", "NX", "GET") == b"v1"
    assert r.get("k") == b"v1"  # NX failed: value unchanged
    assert rawcmd(r, "SET", "k", "v3", "XX", "GET") == b"v1"
    assert r.get("k") == b"v3"
    assert rawcmd(r, "SET", "nokey", "v", "XX", "GET") is None
    assert r.exists("nokey") == 0


def test_set_get_with_expire_and_keepttl(r):
    assert rawcmd(r, "SET", "k", "v1", "EX", "500", "GET") is None
    assert rawcmd(r, "SET", "k", "v2", "GET", "KEEPTTL") == b"v1"
    assert 490 <= r.ttl("k") <= 500
    assert rawcmd(r, "SET", "k", "v3", "GET", "PX", "100000") == b"v2"
    assert 90 <= r.ttl("k") <= 100
    assert rawcmd(r, "SET", "k", "v4", "GET", "EXAT", "1") == b"v3"
    assert r.exists("k") == 0


@pytest.mark.parametrize("nxxx", [None, "NX", "XX"])
@pytest.mark.parametrize("exp", [None, ("EX", "100"), ("PX", "100000"), ("EXAT", "4102444800"),
                                 ("PXAT", "4102444800000"), ("KEEPTTL",)])
@pytest.mark.parametrize("get", [False, True])
@pytest.mark.parametrize("exists", [False, True])
def test_set_every_option_combination(r, nxxx, exp, get, exists):
    if exists:
        r.set("k", "old", ex=5000)
    args = ["SET", "k", "new"]
    if nxxx:
        args.append(nxxx)
    if exp:
        args.extend(exp)
    if get:
        args.append("GET")
    reply = rawcmd(r, *args)
    should_set = not ((nxxx == "NX" and exists) or (nxxx == "XX" and not exists))
    if get:
        assert reply == (b"old" if exists else None)
    else:
        assert reply == (b"OK" if should_set else None)
    if should_set:
        assert r.get("k") == b"new"
        ttl = r.ttl("k")
        if exp is None:
            assert ttl == -1
        elif exp[0] == "KEEPTTL":
            if exists:
                assert 4990 <= ttl <= 5000
            else:
                assert ttl == -1
        elif exp[0] in ("EX", "PX"):
            assert 90 <= ttl <= 100
        else:
            assert ttl > 10 ** 8
    else:
        assert r.get("k") == (b"old" if exists else None)


# --- SETNX / SETEX / PSETEX / GETSET / GETDEL / GETEX ------------------------

def test_setnx(r):
    assert r.setnx("k", "1") is True
    assert r.setnx("k", "2") is False
    assert r.get("k") == b"1"
    assert rawcmd(r, "SETNX", "k", "3") == 0


def test_setex_psetex(r):
    assert r.setex("k", 100, "v") is True
    assert r.ttl("k") == 100
    assert r.get("k") == b"v"
    assert r.psetex("p", 100000, "v") is True
    assert 99000 <= r.pttl("p") <= 100000
    assert err(r, "SETEX", "k", "0", "v") == "invalid expire time in 'setex' command"
    assert err(r, "SETEX", "k", "-5", "v") == "invalid expire time in 'setex' command"
    assert err(r, "PSETEX", "k", "0", "v") == "invalid expire time in 'psetex' command"
    assert err(r, "SETEX", "k", "abc", "v") == "value is not an integer or out of range"
    assert err(r, "SETEX", "k", "10") == "wrong number of arguments for 'setex' command"
    assert r.get("k") == b"v"


def test_getset(r):
    assert r.getset("k", "1") is None
    assert r.getset("k", "2") == b"1"
    assert r.get("k") == b"2"
    r.set("t", "v", ex=100)
    r.getset("t", "w")
    assert r.ttl("t") == -1  # GETSET discards the TTL


def test_getdel(r):
    r.set("k", "v")
    assert r.getdel("k") == b"v"
    assert r.exists("k") == 0
    assert r.getdel("k") is None


def test_getex(r):
    assert r.getex("nokey", ex=10) is None
    assert r.exists("nokey") == 0
    r.set("k", "v")
    assert r.getex("k") == b"v"
    assert r.ttl("k") == -1
    assert r.getex("k", ex=100) == b"v"
    assert r.ttl("k") == 100
    assert r.getex("k", px=200000) == b"v"
    assert 199 <= r.ttl("k") <= 200
    assert r.getex("k", exat=int(time.time()) + 300) == b"v"
    assert 298 <= r.ttl("k") <= 300
    assert r.getex("k", pxat=int(time.time() * 1000) + 400000) == b"v"
    assert 398 <= r.ttl("k") <= 400
    assert r.getex("k", persist=True) == b"v"
    assert r.ttl("k") == -1


def test_getex_past_deletes(r):
    r.set("k", "v")
    assert rawcmd(r, "GETEX", "k", "EXAT", "1") == b"v"
    assert r.exists("k") == 0
    r.set("k", "v")
    assert rawcmd(r, "GETEX", "k", "PXAT", "1") == b"v"
    assert r.exists("k") == 0


@pytest.mark.parametrize("args,msg", [
    (["EX", "0"], "invalid expire time in 'getex' command"),
    (["PX", "-1"], "invalid expire time in 'getex' command"),
    (["EXAT", "0"], "invalid expire time in 'getex' command"),
    (["EX", "abc"], "value is not an integer or out of range"),
    (["EX"], "syntax error"),
    (["EX", "10", "PX", "10"], "syntax error"),
    (["PERSIST", "EX", "10"], "syntax error"),
    (["EX", "10", "PERSIST"], "syntax error"),
    (["FOO"], "syntax error"),
    (["KEEPTTL"], "syntax error"),
])
def test_getex_errors(r, args, msg):
    r.set("k", "v", ex=50)
    assert err(r, "GETEX", "k", *args) == msg
    assert r.ttl("k") in (49, 50)


# --- MGET / MSET / MSETNX ----------------------------------------------------

def test_mget_mset(r):
    assert r.mset({"a": "1", "b": "2", "c": "3"}) is True
    assert r.mget("a", "b", "nokey", "c") == [b"1", b"2", None, b"3"]
    assert r.mget("a") == [b"1"]
    # later duplicates win
    assert rawcmd(r, "MSET", "d", "1", "d", "2") == b"OK"
    assert r.get("d") == b"2"
    assert err(r, "MSET", "a", "1", "b") == "wrong number of arguments for 'mset' command"
    assert err(r, "MSET") == "wrong number of arguments for 'mset' command"
    assert err(r, "MGET") == "wrong number of arguments for 'mget' command"


def test_mset_clears_ttl(r):
    r.set("a", "1", ex=100)
    r.mset({"a": "2"})
    assert r.ttl("a") == -1


def test_msetnx(r):
    assert r.msetnx({"a": "1", "b": "2"}) is True
    assert r.msetnx({"b": "x", "c": "3"}) is False
    assert r.get("b") == b"2"
    assert r.exists("c") == 0
    assert rawcmd(r, "MSETNX", "x", "1", "x", "2") == 1
    assert r.get("x") == b"2"
    assert err(r, "MSETNX", "a") == "wrong number of arguments for 'msetnx' command"
    assert err(r, "MSETNX", "a", "1", "b") == "wrong number of arguments for 'msetnx' command"


# --- APPEND / STRLEN / GETRANGE / SETRANGE -----------------------------------

def test_append_strlen(r):
    assert r.append("k", "hello") == 5
    assert r.append("k", " world") == 11
    assert r.get("k") == b"hello world"
    assert r.strlen("k") == 11
    assert r.strlen("nokey") == 0
    assert r.append("k", "") == 11
    r.set("n", 10)
    assert r.append("n", 5) == 3
    assert r.get("n") == b"105"
    assert r.incr("n") == 106


def test_append_keeps_ttl(r):
    r.set("k", "v", ex=100)
    r.append("k", "w")
    assert r.ttl("k") == 100


@pytest.mark.parametrize("start,end,expected", [
    (0, 3, b"This"), (-3, -1, b"ing"), (0, -1, b"This is a string"),
    (10, 100, b"string"), (5, 3, b""), (-100, 3, b"This"), (-100, -100, b"T"),
    (100, 200, b""), (-1, -1, b"g"), (0, 0, b"T"), (-1, 0, b""), (3, -14, b""),
    (15, 15, b"g"), (16, 16, b""), (-16, -16, b"T"), (-17, -17, b"T"),
])
def test_getrange(r, start, end, expected):
    r.set("k", "This is a string")
    assert r.getrange("k", start, end) == expected


def test_getrange_missing_and_empty(r):
    assert r.getrange("nokey", 0, -1) == b""
    r.set("e", "")
    assert r.getrange("e", 0, -1) == b""
    assert r.getrange("e", -1, -1) == b""
    assert err(r, "GETRANGE", "k", "a", "1") == "value is not an integer or out of range"
    assert err(r, "GETRANGE", "k", "0") == "wrong number of arguments for 'getrange' command"


def test_getrange_numeric_value(r):
    r.set("n", 12345)
    assert r.getrange("n", 1, 2) == b"23"
    assert r.getrange("n", -2, -1) == b"45"


def test_setrange(r):
    r.set("k", "Hello World")
    assert r.setrange("k", 6, "Redis") == 11
    assert r.get("k") == b"Hello Redis"
    assert r.setrange("k", 11, "!!") == 13
    assert r.get("k") == b"Hello Redis!!"


def test_setrange_pads_with_zero_bytes(r):
    assert r.setrange("p", 5, "ab") == 7
    assert r.get("p") == b"\x00\x00\x00\x00\x00ab"
    r.set("q", "xy")
    assert r.setrange("q", 4, "z") == 5
    assert r.get("q") == b"xy\x00\x00z"


def test_setrange_edge_cases(r):
    # empty value on missing key: no key is created
    assert r.setrange("nokey", 0, "") == 0
    assert r.exists("nokey") == 0
    assert r.setrange("nokey", 10, "") == 0
    assert r.exists("nokey") == 0
    r.set("k", "abc")
    assert r.setrange("k", 10, "") == 3  # empty value: no padding
    assert r.get("k") == b"abc"
    assert err(r, "SETRANGE", "k", "-1", "x") == "offset is out of range"
    assert err(r, "SETRANGE", "k", "abc", "x") == "value is not an integer or out of range"
    assert err(r, "SETRANGE", "k", "536870912", "x") == \
        "string exceeds maximum allowed size (proto-max-bulk-len)"
    assert err(r, "SETRANGE", "k", "536870911", "xy") == \
        "string exceeds maximum allowed size (proto-max-bulk-len)"


def test_setrange_keeps_ttl(r):
    r.set("k", "abc", ex=100)
    r.setrange("k", 1, "X")
    assert r.get("k") == b"aXc"
    assert r.ttl("k") == 100


# --- INCR family -------------------------------------------------------------

def test_incr_decr(r):
    assert r.incr("n") == 1
    assert r.incr("n") == 2
    assert r.decr("n") == 1
    assert r.incrby("n", 100) == 101
    assert r.decrby("n", 200) == -99
    assert r.decr("m") == -1
    assert r.get("n") == b"-99"
    assert r.incrby("n", -1) == -100
    assert r.decrby("n", -100) == 0


def test_incr_keeps_ttl(r):
    r.set("n", 5, ex=100)
    r.incr("n")
    assert r.ttl("n") == 100


@pytest.mark.parametrize("val", ["abc", "1.5", "", " 1", "1 ", "+1", "0x10", "1e3",
                                 "9223372036854775808", "-9223372036854775809", "01a"])
def test_incr_non_integer(r, val):
    r.set("n", val)
    assert err(r, "INCR", "n") == "value is not an integer or out of range"
    assert r.get("n") == val.encode()


def test_incr_leading_zero_and_minus_zero(r):
    # Redis string2ll rejects leading zeros / "-0"
    for val in ("01", "-0", "00"):
        r.set("n", val)
        assert err(r, "INCR", "n") == "value is not an integer or out of range", val


def test_incr_overflow(r):
    r.set("n", "9223372036854775807")
    assert err(r, "INCR", "n") == "increment or decrement would overflow"
    assert err(r, "INCRBY", "n", "1") == "increment or decrement would overflow"
    assert r.get("n") == b"9223372036854775807"
    r.set("n", "-9223372036854775808")
    assert err(r, "DECR", "n") == "increment or decrement would overflow"
    assert err(r, "DECRBY", "n", "1") == "increment or decrement would overflow"
    assert r.decrby("n", -5) == -9223372036854775803
    r.set("z", "0")
    assert err(r, "DECRBY", "z", "-9223372036854775808") == "decrement would overflow"
    assert r.incrby("z", "-9223372036854775808") == -9223372036854775808


def test_incrby_bad_increment(r):
    assert err(r, "INCRBY", "n", "abc") == "value is not an integer or out of range"
    assert err(r, "INCRBY", "n", "1.0") == "value is not an integer or out of range"
    assert err(r, "INCRBY", "n", "9223372036854775808") == "value is not an integer or out of range"
    assert err(r, "DECRBY", "n", "x") == "value is not an integer or out of range"
    assert r.exists("n") == 0


@pytest.mark.parametrize("start,incr,expected", [
    ("10.5", "0.1", b"10.6"), ("5.0e3", "2.0e2", b"5200"), ("0", "1", b"1"),
    ("3", "-3", b"0"), ("1", "0.5", b"1.5"), ("10", "-0.25", b"9.75"),
    ("1.1", "2.2", b"3.3"), ("0", "1e-5", b"0.00001"), ("17179869184", "1.5", b"17179869185.5"),
    ("-1", "0.5", b"-0.5"),
])
def test_incrbyfloat(r, start, incr, expected):
    r.set("f", start)
    assert rawcmd(r, "INCRBYFLOAT", "f", incr) == expected
    assert r.get("f") == expected


def test_incrbyfloat_missing_key_and_ttl(r):
    assert rawcmd(r, "INCRBYFLOAT", "nf", "3.5") == b"3.5"
    r.set("f", "1", ex=100)
    r.incrbyfloat("f", 1)
    assert r.ttl("f") == 100


def test_incrbyfloat_errors(r):
    r.set("s", "abc")
    assert err(r, "INCRBYFLOAT", "s", "1") == "value is not a valid float"
    assert err(r, "INCRBYFLOAT", "f", "abc") == "value is not a valid float"
    assert err(r, "INCRBYFLOAT", "f", "nan") == "value is not a valid float"
    assert err(r, "INCRBYFLOAT", "f", "inf") == "increment would produce NaN or Infinity"
    r.set("i", "inf")
    assert err(r, "INCRBYFLOAT", "i", "1") == "increment would produce NaN or Infinity"
    r.set("sp", "1 ")
    assert err(r, "INCRBYFLOAT", "sp", "1") == "value is not a valid float"
    assert err(r, "INCRBYFLOAT", "f", "") == "value is not a valid float"
    assert r.exists("f") == 0


def test_incr_on_float_string_errors(r):
    r.set("f", "1.5")
    assert err(r, "INCR", "f") == "value is not an integer or out of range"
    r.incrbyfloat("f", "0.5")
    assert r.get("f") == b"2"
    assert r.incr("f") == 3


# --- arity errors --------------------------------------------------------------

@pytest.mark.parametrize("cmd", [
    ["GET"], ["GET", "a", "b"], ["SET", "a"], ["SETNX", "a"], ["SETEX", "a", "1"],
    ["PSETEX", "a"], ["GETSET", "a"], ["GETDEL"], ["GETEX"], ["APPEND", "a"],
    ["STRLEN"], ["INCR"], ["DECR", "a", "b"], ["INCRBY", "a"], ["DECRBY", "a"],
    ["INCRBYFLOAT", "a"], ["GETRANGE", "a", "1"], ["SETRANGE", "a", "1"],
])
def test_wrong_arity(r, cmd):
    assert err(r, *cmd) == f"wrong number of arguments for '{cmd[0].lower()}' command"


def test_lazy_expiry_of_string(r):
    r.set("k", "v", px=50)
    assert wait_for(lambda: r.get("k") is None, timeout=3)
    assert r.exists("k") == 0
