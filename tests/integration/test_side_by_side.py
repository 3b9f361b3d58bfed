"""Byte-exact comparison with a real Redis 7.0.

A real redis-server (the reference) and the server under test both run the
same deterministic script of several hundred commands over raw sockets; every
reply must be byte-identical. The script runs once in RESP2 and once after
HELLO 3. (With PIER_TEST_TARGET=redis this compares Redis with Redis.)

Nothing time-dependent or unordered is compared byte-for-byte: TTL only where
the value is exact (-1, -2, EX 1000 -> 1000), KEYS with several matches is
compared as a sorted list, no SCAN cursors, no TIME/INFO/CLIENT LIST/HELLO.
"""
import itertools
import time

import pytest

from conftest import RawConn, encode_command, parse_reply


class Entry:
    __slots__ = ("args", "raw", "unordered")

    def __init__(self, args=None, raw=None, unordered=False):
        self.args, self.raw, self.unordered = args, raw, unordered

    def wire(self):
        return self.raw if self.raw is not None else encode_command(*self.args)

    def __repr__(self):
        if self.raw is not None:
            return "raw:" + repr(self.raw)
        return " ".join(repr(a) if (isinstance(a, bytes) or " " in str(a) or a == "") else str(a)
                        for a in self.args)


# --- the script ----------------------------------------------------------------

INTS = ["0", "1", "-1", "10", "9223372036854775807", "-9223372036854775808", "9223372036854775806",
        "-9223372036854775807", "9223372036854775808", "-9223372036854775809", "abc", "", "1.5",
        " 1", "1 ", "+1", "01", "-0", "0x1", "1e3", "99999999999999999999999"]
FLOATS = ["0.1", "1", "-1", "1e10", "1e-10", "-0", "1.5e308", "inf", "-inf", "nan", "3.0", "10.50",
          "0x10", "17179869184.0001", "-1.5", "5e-324", "  1", "1 ", "", "abc", "1e400",
          "0.30000000000000004", "123456789012345678901234567890", "-10.5"]


def build_script(now):
    S = []

    def c(*args, unordered=False):
        S.append(Entry(args=tuple(args), unordered=unordered))

    def raw(data):
        S.append(Entry(raw=data))

    c("FLUSHALL")
    # --- connection-level commands -----------------------------------------
    c("PING"); c("PING", "hello world"); c("PING", ""); c("PING", "a", "b")
    c("ECHO", "x"); c("ECHO", ""); c("ECHO", b"\x00\r\n\xff"); c("ECHO"); c("ECHO", "a", "b")
    c("SELECT", "0"); c("SELECT", "abc"); c("SELECT", "-1"); c("SELECT", "99999"); c("SELECT")
    c("DBSIZE"); c("DBSIZE", "x"); c("FLUSHDB"); c("FLUSHDB", "SYNC"); c("FLUSHDB", "ASYNC")
    c("FLUSHDB", "FOO"); c("FLUSHALL", "SYNC"); c("FLUSHALL", "ASYNC"); c("FLUSHALL", "X", "Y")
    c("CLIENT", "GETNAME"); c("CLIENT", "SETNAME", "tester"); c("CLIENT", "GETNAME")
    c("CLIENT", "SETNAME", "bad name"); c("CLIENT", "SETNAME", "bad\nname"); c("CLIENT", "SETNAME")
    c("CLIENT", "SETNAME", ""); c("CLIENT", "GETNAME"); c("CLIENT", "GETNAME", "x")
    c("CLIENT", "NOSUCH"); c("CLIENT"); c("CLIENT", "KILL", "ID", "abc")
    c("CLIENT", "KILL", "ID", "999999"); c("CLIENT", "KILL", "1.2.3.4:5")
    c("CLIENT", "KILL", "ADDR", "1.2.3.4:5"); c("CLIENT", "KILL", "TYPE", "bogus")
    c("CLIENT", "KILL", "USER", "nobody"); c("CLIENT", "KILL", "ID", "1", "SKIPME", "maybe")
    c("CLIENT", "KILL", "FOO", "bar"); c("CLIENT", "KILL", "ID", "0"); c("CLIENT", "KILL")
    c("CLIENT", "LIST", "ID", "0"); c("CLIENT", "LIST", "ID", "-5"); c("CLIENT", "LIST", "FOO")
    c("CLIENT", "LIST", "ID"); c("CLIENT", "ID", "x")
    c("CONFIG", "GET", "nosuchoption"); c("CONFIG", "GET", "timeout"); c("CONFIG", "GET")
    c("CONFIG", "SET", "nosuchoption", "1"); c("CONFIG", "SET", "timeout", "abc")
    c("CONFIG", "SET", "timeout", "0"); c("CONFIG", "SET", "maxclients", "abc")
    c("CONFIG", "SET", "timeout"); c("CONFIG", "NOSUCH"); c("CONFIG")
    c("CONFIG", "SET", "timeout", "5", "timeout", "6"); c("CONFIG", "GET", "timeout")
    c("CONFIG", "SET", "timeout", "7", "maxclients", "10000"); c("CONFIG", "GET", "timeout")
    c("CONFIG", "SET", "timeout", "8", "nosuchoption", "1"); c("CONFIG", "GET", "timeout")
    c("CONFIG", "SET", "timeout", "-1"); c("CONFIG", "SET", "TIMEOUT", "0"); c("CONFIG", "GET", "TIMEOUT")
    c("CONFIG", "GET", "timeout", "timeout"); c("CONFIG", "SET", "timeout", "0")
    # CONFIG HELP/RESETSTAT/REWRITE (neither server has a config file here);
    # loglevel by Redis's names, read back as set
    c("CONFIG", "HELP"); c("CONFIG", "HELP", "x"); c("CONFIG", "RESETSTAT")
    c("CONFIG", "RESETSTAT", "x"); c("CONFIG", "REWRITE"); c("CONFIG", "REWRITE", "x")
    for level in ("notice", "DEBUG", "verbose", "warning"):
        c("CONFIG", "SET", "loglevel", level); c("CONFIG", "GET", "loglevel")
    c("COMMAND", "NOSUCH"); c("COMMAND", "INFO", "nosuchcommand"); c("COMMAND", "DOCS", "nosuchcommand")
    # subcommands: arity from each subcommand's row, option errors from the handler
    c("CONFIG", "SET", "timeout", "0", "maxclients"); c("COMMAND", "COUNT", "x"); c("COMMAND", "LIST", "x")
    # (not COMMAND HELP itself: Redis's lists GETKEYSANDFLAGS, which needs
    # per-key access flags pier's rows do not have)
    c("COMMAND", "LIST", "FILTERBY", "NOSUCH", "x"); c("COMMAND", "HELP", "x")
    c("COMMAND", "INFO", "client|nosuch"); c("COMMAND", "INFO", "get|x"); c("COMMAND", "DOCS", "get|x")
    c("COMMAND", "LIST", "FILTERBY", "PATTERN", "xgroup|*", unordered=True)
    c("COMMAND", "LIST", "FILTERBY", "PATTERN", "client|*id", unordered=True)
    # keys as the rows name them (key positions, or getkeys for XREAD's;
    # not an unbalanced XREAD, where Redis's COMMAND GETKEYS reads its key
    # specs and its dispatcher, like pier's, finds no key)
    for args in (("GET", "k"), ("MSET", "a", "1", "b", "2"), ("DEL", "a", "b", "c"),
                 ("RENAME", "a", "b"), ("XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "$"),
                 ("XREAD", "BLOCK", "0", "STREAMS", "s", ">"),
                 ("XREADGROUP", "GROUP", "g", "c", "NOACK", "STREAMS", "s1", "s2", ">", ">"),
                 ("XGROUP", "CREATE", "s", "g", "$"), ("XGROUP", "DESTROY", "s", "g"),
                 ("XINFO", "STREAM", "s"), ("XINFO", "CONSUMERS", "s", "g"),
                 ("XREAD", "COUNT"), ("PING",), ("PING", "x"),
                 ("KEYS", "*"), ("NOSUCH", "x"), ("SET", "a"), ("XGROUP", "NOSUCH", "x"),
                 ("XGROUP", "HELP"), ("CLIENT", "ID"), ("GET",)):
        c("COMMAND", "GETKEYS", *args)
    c("COMMAND", "GETKEYS"); c("COMMAND", "GETKEYS", "GET")
    c("TIME", "x")
    # --- unknown commands -------------------------------------------------
    c("NOSUCH"); c("nosuch", "a", "b"); c("foo", "a", "b", "c", "d"); c("foo", "x" * 200)
    c("foo", *["arg%d" % i for i in range(40)]); c("foo", "it's", 'q"uote')
    c("GETT", "k"); c("SETT"); c("", "x"); c("foo", "")
    # --- SET and options ---------------------------------------------------
    c("SET", "k", "v"); c("GET", "k"); c("SET", "k", "v2"); c("GET", "k"); c("TTL", "k")
    c("SET", "k"); c("SET"); c("GET"); c("GET", "a", "b")
    for combo in (["NX", "XX"], ["EX", "10", "PX", "10"], ["EX", "10", "KEEPTTL"], ["EX"], ["FOO"],
                  ["PXAT", "1", "EXAT", "1"], ["KEEPTTL", "PX", "1"], ["GET", "GET", "NX", "XX"],
                  ["EX", "0"], ["EX", "-1"], ["PX", "0"], ["EXAT", "0"], ["PXAT", "-5"], ["EX", "abc"],
                  ["EX", "1.5"], ["EX", "9223372036854775807"], ["PX", "9223372036854775807"],
                  ["EXAT", "9223372036854775807"], ["EX", "99999999999999999999"],
                  ["EX", "9223372036854775"], ["PX", "9223372036854775806"], ["ex", "100", "nx"],
                  ["Ex", "100"], ["XX", "XX"], ["NX", "NX"], ["EX", "10", "EX", "20"]):
        c("SET", "k", "v", *combo); c("GET", "k"); c("TTL", "k")
    for nxxx in (None, "NX", "XX"):
        for exp in (None, ("EX", "1000"), ("PX", "1000000"), ("EXAT", str(now + 100000)),
                    ("PXAT", str((now + 100000) * 1000)), ("KEEPTTL",), ("EXAT", "1"), ("PXAT", "1")):
            for get in (False, True):
                for state in ("missing", "plain", "ttl"):
                    c("DEL", "sk")
                    if state == "plain":
                        c("SET", "sk", "old")
                    elif state == "ttl":
                        c("SET", "sk", "old", "EX", "5000")
                    args = ["SET", "sk", "new"]
                    if nxxx:
                        args.append(nxxx)
                    if exp:
                        args.extend(exp)
                    if get:
                        args.append("GET")
                    c(*args)
                    c("GET", "sk")
                    if exp and exp[0] in ("EXAT", "PXAT") and exp[1] != "1":
                        c("PERSIST", "sk")  # 1 if a TTL was set: exact, unlike TTL
                    elif exp and exp[0] == "KEEPTTL" and state == "ttl":
                        c("PERSIST", "sk")
                    else:
                        c("TTL", "sk")
    # --- SETNX SETEX PSETEX GETSET GETDEL GETEX -------------------------------
    c("DEL", "k")
    c("SETNX", "k", "1"); c("SETNX", "k", "2"); c("GET", "k"); c("SETNX", "k"); c("SETNX")
    c("SETEX", "k", "1000", "v"); c("TTL", "k"); c("GET", "k"); c("SETEX", "k", "0", "v")
    c("SETEX", "k", "-1", "v"); c("SETEX", "k", "abc", "v"); c("SETEX", "k", "1.5", "v")
    c("SETEX", "k", "9223372036854775807", "v"); c("SETEX", "k", "10"); c("TTL", "k")
    c("PSETEX", "k", "1000000", "v"); c("TTL", "k"); c("PSETEX", "k", "0", "v"); c("PSETEX", "k", "-5", "v")
    c("PSETEX", "k", "x", "v"); c("PSETEX", "k", "9223372036854775807", "v"); c("PSETEX", "k")
    c("DEL", "g"); c("GETSET", "g", "1"); c("GETSET", "g", "2"); c("GET", "g"); c("GETSET", "g")
    c("SETEX", "g", "1000", "x"); c("GETSET", "g", "y"); c("TTL", "g")
    c("GETDEL", "g"); c("GETDEL", "g"); c("EXISTS", "g"); c("GETDEL"); c("GETDEL", "a", "b")
    c("GETEX", "nokey"); c("GETEX", "nokey", "EX", "10"); c("EXISTS", "nokey")
    c("SET", "ge", "val")
    for opts in ([], ["EX", "1000"], ["PX", "2000000"], ["PERSIST"], ["EXAT", str(now + 5000)],
                 ["PXAT", str((now + 6000) * 1000)], ["EX", "0"], ["EX", "-1"], ["PX", "0"], ["EX", "abc"],
                 ["EX"], ["EX", "10", "PX", "10"], ["PERSIST", "EX", "10"], ["EX", "10", "PERSIST"],
                 ["KEEPTTL"], ["FOO"], ["PERSIST", "PERSIST"], ["EX", "9223372036854775807"],
                 ["ex", "1000"], ["EXAT", "1"]):
        c("GETEX", "ge", *opts)
        if opts and opts[0] in ("EXAT", "PXAT") and opts[1] != "1":
            c("PERSIST", "ge"); c("TTL", "ge")
        else:
            c("TTL", "ge")
    c("GETEX"); c("SET", "ge", "v2"); c("GETEX", "ge", "PXAT", "1"); c("EXISTS", "ge")
    # --- MGET MSET MSETNX ---------------------------------------------------
    c("MSET", "a", "1", "b", "2", "c", "3"); c("MGET", "a", "b", "c", "nokey"); c("MGET", "nokey")
    c("MSET", "a"); c("MSET", "a", "1", "b"); c("MSET"); c("MGET")
    c("MSET", "d", "1", "d", "2"); c("GET", "d")
    c("SETEX", "a", "1000", "x"); c("MSET", "a", "y"); c("TTL", "a")
    c("MSETNX", "a", "1", "new1", "2"); c("EXISTS", "new1"); c("MSETNX", "new1", "1", "new2", "2")
    c("MGET", "new1", "new2"); c("MSETNX", "x1", "1", "x1", "2"); c("GET", "x1"); c("MSETNX", "a")
    c("MSETNX", "a", "1", "b"); c("MSETNX")
    c("MSET", *itertools.chain.from_iterable(("mk%d" % i, "mv%d" % i) for i in range(100)))
    c("MGET", *["mk%d" % i for i in range(0, 120, 3)])
    # --- APPEND STRLEN ------------------------------------------------------
    c("DEL", "ap"); c("APPEND", "ap", "hello"); c("APPEND", "ap", " world"); c("GET", "ap")
    c("STRLEN", "ap"); c("APPEND", "ap", ""); c("STRLEN", "nokey"); c("APPEND", "ap")
    c("APPEND", "ap", b"\x00\r\n"); c("GET", "ap"); c("STRLEN", "ap"); c("STRLEN"); c("STRLEN", "a", "b")
    c("SET", "ap", "10"); c("APPEND", "ap", "5"); c("INCR", "ap"); c("GET", "ap")
    c("SETEX", "ap", "1000", "x"); c("APPEND", "ap", "y"); c("TTL", "ap")
    # --- GETRANGE ----------------------------------------------------------
    c("SET", "gr", "This is a string")
    idx = ["-100", "-17", "-16", "-15", "-1", "0", "1", "3", "15", "16", "100"]
    for s_, e_ in itertools.product(idx, idx):
        c("GETRANGE", "gr", s_, e_)
    c("GETRANGE", "nokey", "0", "-1"); c("SET", "empty", ""); c("GETRANGE", "empty", "0", "-1")
    c("GETRANGE", "empty", "-1", "-1"); c("GETRANGE", "empty", "0", "0")
    c("GETRANGE", "gr", "a", "1"); c("GETRANGE", "gr", "0", "b"); c("GETRANGE", "gr", "0")
    c("GETRANGE", "gr", "9223372036854775807", "9223372036854775807")
    c("GETRANGE", "gr", "-9223372036854775808", "-9223372036854775808")
    c("GETRANGE", "gr", "0", "9223372036854775808");
    c("SET", "grn", "12345"); c("GETRANGE", "grn", "1", "2"); c("GETRANGE", "grn", "-2", "-1")
    # --- SETRANGE ----------------------------------------------------------
    for state in ("missing", "short", "long"):
        for off in ("0", "1", "5", "20"):
            for val in ("", "x", "hello"):
                c("DEL", "sr")
                if state == "short":
                    c("SET", "sr", "ab")
                elif state == "long":
                    c("SET", "sr", "Hello World")
                c("SETRANGE", "sr", off, val); c("GET", "sr"); c("EXISTS", "sr")
    c("SETRANGE", "sr", "-1", "x"); c("SETRANGE", "sr", "abc", "x"); c("SETRANGE", "sr", "1")
    c("SETRANGE", "sr", "536870912", "x"); c("SETRANGE", "sr", "536870911", "xy")
    c("SETRANGE", "sr", "536870912", ""); c("SETRANGE", "nokey2", "536870912", "")
    c("SETRANGE", "sr", "9223372036854775807", "x"); c("EXISTS", "nokey2")
    c("SETEX", "sr", "1000", "abc"); c("SETRANGE", "sr", "1", "X"); c("GET", "sr"); c("TTL", "sr")
    # --- INCR family ---------------------------------------------------------
    for v in INTS:
        c("SET", "n", v); c("INCR", "n"); c("GET", "n")
        c("SET", "n", v); c("DECR", "n")
        c("SET", "n", v); c("INCRBY", "n", "5")
        c("SET", "n", v); c("DECRBY", "n", "-5")
        c("SET", "n", v); c("INCRBYFLOAT", "n", "1.5")
        c("DEL", "m"); c("INCRBY", "m", v); c("DECRBY", "m", v); c("GET", "m")
    c("SET", "n", "0"); c("DECRBY", "n", "-9223372036854775808"); c("INCRBY", "n", "-9223372036854775808")
    c("DECRBY", "n", "-9223372036854775808"); c("INCRBY", "n", "-1")
    c("SET", "n", "-9223372036854775807"); c("DECRBY", "n", "1"); c("DECRBY", "n", "1")
    c("SETEX", "n", "1000", "5"); c("INCR", "n"); c("TTL", "n")
    c("INCR"); c("INCR", "a", "b"); c("DECR"); c("INCRBY", "n"); c("DECRBY", "n"); c("INCRBY")
    for base in ("10.5", "0", "-3", "1e3", "abc", "inf", "5.0e3", "1.7976931348623157e308", None):
        for f in FLOATS:
            if base is None:
                c("DEL", "f")
            else:
                c("SET", "f", base)
            c("INCRBYFLOAT", "f", f)
            c("GET", "f")
    c("INCRBYFLOAT", "f"); c("INCRBYFLOAT"); c("INCRBYFLOAT", "f", "1", "2")
    c("SETEX", "f", "1000", "1.5"); c("INCRBYFLOAT", "f", "1"); c("TTL", "f")
    c("SET", "f", "1"); c("INCRBYFLOAT", "f", "0.1"); c("INCRBYFLOAT", "f", "0.2"); c("INCR", "f")
    # --- keys: DEL UNLINK EXISTS TYPE ----------------------------------------
    c("FLUSHALL"); c("MSET", "a", "1", "b", "2", "c", "3")
    c("EXISTS", "a"); c("EXISTS", "a", "a", "b", "nokey"); c("EXISTS"); c("EXISTS", "nokey")
    c("TOUCH", "a"); c("TOUCH", "a", "a", "b", "nokey"); c("TOUCH"); c("TOUCH", "nokey")
    c("DEL", "a", "nokey"); c("DEL", "b", "c", "b"); c("DEL", "a"); c("DEL"); c("DBSIZE")
    c("MSET", "a", "1", "b", "2"); c("UNLINK", "a", "b", "b", "x"); c("UNLINK"); c("UNLINK", "a")
    c("SET", "t", "v"); c("TYPE", "t"); c("TYPE", "nokey"); c("TYPE"); c("TYPE", "a", "b")
    # --- EXPIRE family ---------------------------------------------------------
    c("SET", "e", "v"); c("TTL", "e"); c("PTTL", "e"); c("TTL", "nokey"); c("PTTL", "nokey")
    c("EXPIRE", "e", "1000"); c("TTL", "e"); c("PEXPIRE", "e", "2000000"); c("TTL", "e")
    c("EXPIRE", "nokey", "100"); c("PEXPIRE", "nokey", "100"); c("EXPIREAT", "nokey", str(now + 100))
    c("PEXPIREAT", "nokey", str(now * 1000)); c("PERSIST", "e"); c("PERSIST", "e"); c("PERSIST", "nokey")
    c("TTL", "e"); c("PERSIST"); c("TTL"); c("PTTL", "a", "b")
    for cmd in ("EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"):
        def t(sec, cmd=cmd):
            return str({"EXPIRE": sec, "PEXPIRE": sec * 1000, "EXPIREAT": now + sec,
                        "PEXPIREAT": (now + sec) * 1000}[cmd])
        relative = cmd in ("EXPIRE", "PEXPIRE")
        for opts in ([], ["NX"], ["XX"], ["GT"], ["LT"], ["XX", "GT"], ["XX", "LT"], ["nx"], ["gt"],
                     ["NX", "XX"], ["GT", "LT"], ["NX", "GT"], ["LT", "NX"], ["FOO"], ["NX", "NX"],
                     ["GT", "GT"]):
            for state in ("plain", "ttl", "missing"):
                for sec in (500, 2000):
                    c("DEL", "ek")
                    if state == "plain":
                        c("SET", "ek", "v")
                    elif state == "ttl":
                        c("SET", "ek", "v", "EX", "1000")
                    c(cmd, "ek", t(sec), *opts)
                    if relative:
                        c("TTL", "ek")
                    else:
                        c("PERSIST", "ek")
        c(cmd, "e", "abc"); c(cmd, "e", "1.5"); c(cmd, "e"); c(cmd); c(cmd, "e", "10", "20")
        c(cmd, "e", "9223372036854775807"); c(cmd, "e", "-9223372036854775808")
        c(cmd, "e", "9223372036854775808"); c(cmd, "e", "922337203685477580")
        c("SET", "e", "v"); c(cmd, "e", "-1"); c("EXISTS", "e")
        c("SET", "e", "v"); c(cmd, "e", "0"); c("EXISTS", "e")
        c("SET", "e", "v")
    c("SET", "e", "v"); c("EXPIREAT", "e", "1"); c("GET", "e")
    c("SET", "e", "v"); c("PEXPIREAT", "e", "1"); c("TTL", "e")
    # --- RENAME RENAMENX -----------------------------------------------------
    c("FLUSHALL"); c("SET", "a", "1", "EX", "1000"); c("SET", "b", "2")
    c("RENAME", "a", "b"); c("GET", "b"); c("TTL", "b"); c("EXISTS", "a"); c("RENAME", "nokey", "x")
    c("RENAME", "nokey", "nokey"); c("RENAME", "b", "b"); c("GET", "b"); c("TTL", "b")
    c("SET", "c", "3"); c("RENAME", "c", "b"); c("TTL", "b"); c("GET", "b")
    c("RENAME", "a"); c("RENAME"); c("RENAME", "a", "b", "c")
    c("SET", "x", "1"); c("RENAMENX", "x", "b"); c("GET", "x"); c("RENAMENX", "x", "y"); c("GET", "y")
    c("RENAMENX", "y", "y"); c("RENAMENX", "nokey", "z"); c("RENAMENX", "nokey", "nokey"); c("RENAMENX", "y")
    c("SET", "bin\x00key", "v"); c("RENAME", "bin\x00key", "bin\r\nkey"); c("GET", "bin\r\nkey")
    # --- KEYS (sorted) / RANDOMKEY / SCAN errors ------------------------------
    c("FLUSHALL"); c("RANDOMKEY"); c("KEYS", "*"); c("SET", "only", "1"); c("RANDOMKEY")
    c("KEYS", "*"); c("KEYS"); c("RANDOMKEY", "x")
    c("MSET", "hello", "1", "hallo", "1", "hxllo", "1", "hllo", "1", "heeeello", "1", "h*llo", "1",
      "h?llo", "1", "h[a]llo", "1", "h\\llo", "1", "foo", "1", "foobar", "1", "a-b", "1")
    for pat in ("*", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-i]llo", "h[i-a]llo", "h\\*llo",
                "h\\?llo", "h\\[a]llo", "h\\\\llo", "foo*", "*bar", "*o*", "?", "a[-]b", "nomatch",
                "", "[", "h[", "h[a-", "\\", "*\\", "[]", "[^]", "**", "h**o", "FOO", "?????",
                "[!e]*"):
        c("KEYS", pat, unordered=True)
    c("SCAN", "abc"); c("SCAN", "18446744073709551616"); c("SCAN", "0", "MATCH"); c("SCAN", "0", "COUNT", "0")
    c("SCAN", "0", "COUNT", "abc"); c("SCAN", "0", "COUNT", "-1"); c("SCAN", "0", "FOO", "bar")
    c("SCAN", "0", "TYPE"); c("SCAN")
    c("DBSIZE"); c("FLUSHDB"); c("DBSIZE"); c("KEYS", "*")
    # --- inline commands ----------------------------------------------------
    raw(b"SET inl \"a b\\x41\"\r\n"); raw(b"GET inl\r\n"); raw(b"SET inl 'it\\'s'\r\n"); raw(b"GET inl\r\n")
    raw(b'SET inl "\\t\\n\\r\\\\\\"\\x00\\xff\\xZZ\\q"\r\n'); raw(b"GET inl\r\n")
    raw(b"  ECHO   spaced  \r\n"); raw(b"ECHO lf-only\n"); raw(b"SET inl \"\"\r\n"); raw(b"STRLEN inl\r\n")
    raw(b"nosuch a b\r\n"); raw(b"get\r\n"); raw(b"PING\r\n"); raw(b"ping 'x y'\r\n")
    raw(b"*0\r\n*-1\r\nPING\r\n"); raw(b"\r\n\r\nECHO x\r\n")
    # --- binary keys and values ---------------------------------------------
    for i, v in enumerate([b"\x00", b"\r\n", bytes(range(256)), b"$3\r\nabc\r\n", b"*1\r\n"]):
        c("SET", b"bin:%d\x00" % i, v); c("GET", b"bin:%d\x00" % i); c("STRLEN", b"bin:%d\x00" % i)
    c("FLUSHALL")
    return S


# --- running -------------------------------------------------------------------

def run_script(port, script, resp3):
    conn = RawConn(port, timeout=10)
    if resp3:
        hello = conn.cmd("HELLO", "3")
        assert hello.startswith(b"%"), f"HELLO 3 failed: {hello[:100]!r}"
    replies = []
    for entry in script:
        try:
            conn.send(entry.wire())
            replies.append(conn.read_reply_raw(timeout=5))
        except Exception as e:  # record, reconnect and go on
            replies.append(f"<{type(e).__name__}: {str(e)[:200]}>")
            conn.close()
            conn = RawConn(port, timeout=10)
            if resp3:
                conn.cmd("HELLO", "3")
    conn.close()
    return replies


def normalize(entry, reply):
    if entry.unordered and isinstance(reply, bytes):
        try:
            v, _ = parse_reply(reply)
        except Exception:
            return reply
        if isinstance(v, list):
            return ("sorted", sorted(v))
    return reply


@pytest.fixture(scope="module")
def script():
    return build_script(int(time.time()))


def test_script_is_large_enough(script):
    assert len(script) >= 500, len(script)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_side_by_side(reference, server, script, resp3):
    expected = run_script(reference.port, script, resp3)
    actual = run_script(server.port, script, resp3)
    mismatches = []
    for i, (entry, exp, act) in enumerate(zip(script, expected, actual)):
        if normalize(entry, exp) != normalize(entry, act):
            mismatches.append((i, entry, exp, act))
    assert all(isinstance(x, bytes) for x in expected), "the reference Redis failed a command"
    if mismatches:
        lines = [f"{len(mismatches)} of {len(script)} replies differ "
                 f"({'RESP3' if resp3 else 'RESP2'}); first ones:"]
        for i, entry, exp, act in mismatches[:40]:
            lines.append(f"  #{i}: {entry!r}\n      redis: {exp!r}\n      got:   {act!r}")
        pytest.fail("\n".join(lines), pytrace=False)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_quit_side_by_side(reference, server, resp3):
    out = []
    for srv in (reference, server):
        c = RawConn(srv.port)
        if resp3:
            c.cmd("HELLO", "3")
        c.send(b"*1\r\n$4\r\nQUIT\r\nPING\r\n")
        out.append(c.read_until_closed(5))
        c.close()
    assert out[0] == (b"+OK\r\n", True)
    assert out[1] == out[0]


# COMMAND INFO / COMMAND DOCS: pier's rows must agree with Redis on what
# clients rely on (name, arity, key positions; summary, since, group), and
# pier must claim no flag or ACL category Redis does not. Redis's full
# argument docs, tips and key specs are not reproduced (the issue asks for
# "enough for redis-cli").
SIMPLE_COMMANDS = [
    "ping", "echo", "quit", "hello", "select", "info", "dbsize", "flushall", "flushdb", "time",
    "client", "config", "command", "save", "bgsave", "bgrewriteaof", "lastsave", "shutdown",
    "get", "set", "setnx", "setex", "psetex", "getset", "getdel", "getex", "mget", "mset", "msetnx",
    "append", "strlen", "incr", "decr", "incrby", "decrby", "incrbyfloat", "getrange", "setrange",
    "del", "unlink", "exists", "expire", "pexpire", "expireat", "pexpireat", "ttl", "pttl",
    "persist", "type", "rename", "renamenx", "keys", "scan", "randomkey", "touch",
]


def _essentials(e):
    """name, arity, key positions; flags; ACL categories; subcommands by name"""
    subs = {sub[0]: _essentials(sub) for sub in e[9]} if len(e) > 9 else {}
    return {"name": e[0], "arity": e[1], "keys": e[3:6]}, set(e[2]), set(e[6]), subs


def _info_essentials(reply):
    return _essentials(parse_reply(reply)[0][0])


def _docs_essentials(reply):
    entries = parse_reply(reply)[0]
    doc = dict(zip(entries[1][::2], entries[1][1::2])) if not isinstance(entries, dict) \
        else dict(next(iter(entries.values())))
    return {k: doc.get(k) for k in (b"summary", b"since", b"group")}


def _essential_diffs(name, exp, act):
    (exp_row, exp_flags, exp_acl, exp_subs), (act_row, act_flags, act_acl, act_subs) = exp, act
    diffs = []
    if exp_row != act_row:
        diffs.append(f"  {name}: redis {exp_row} pier {act_row}")
    if not act_flags <= exp_flags:
        diffs.append(f"  {name}: flags not in redis: {act_flags - exp_flags}")
    if not act_acl <= exp_acl:
        diffs.append(f"  {name}: acl categories not in redis: {act_acl - exp_acl}")
    for sub, act_sub in act_subs.items():
        if sub not in exp_subs:
            diffs.append(f"  {name}: subcommand {sub!r} not in redis")
        else:
            diffs += _essential_diffs(sub.decode(), exp_subs[sub], act_sub)
    return diffs


def command_info_diffs(reference, server, names):
    """Where pier's COMMAND INFO for `names` departs from Redis's: name, arity
    and key positions must be equal; pier may claim no flag or ACL category
    that Redis does not; every subcommand pier has (a container's tenth
    element, "parent|sub") must be Redis's, compared the same way, and must
    be found alone by COMMAND INFO parent|sub."""
    diffs = []
    for name in names:
        conns = [RawConn(x.port) for x in (reference, server)]
        exp, act = (_info_essentials(c.cmd("COMMAND", "INFO", name)) for c in conns)
        diffs += _essential_diffs(name, exp, act)
        for sub, act_sub in act[3].items():
            alone = _info_essentials(conns[1].cmd("COMMAND", "INFO", sub))
            if alone != act_sub:
                diffs.append(f"  {sub}: COMMAND INFO {sub} differs from the container's entry")
        for c in conns:
            c.close()
    return diffs


def test_command_info_agrees(reference, server):
    diffs = command_info_diffs(reference, server, SIMPLE_COMMANDS)
    assert not diffs, "COMMAND INFO differs:\n" + "\n".join(diffs)


def test_command_docs_agree(reference, server):
    diffs = []
    for name in SIMPLE_COMMANDS:
        conns = [RawConn(x.port) for x in (reference, server)]
        exp, act = (_docs_essentials(c.cmd("COMMAND", "DOCS", name)) for c in conns)
        for c in conns:
            c.close()
        if exp != act:
            diffs.append(f"  {name}: redis {exp} pier {act}")
    assert not diffs, "COMMAND DOCS differs:\n" + "\n".join(diffs)
