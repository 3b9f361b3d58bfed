#!/usr/bin/env python3
"""Write the seeds of tests/fuzz/fuzz_msg.c into corpus/msg/: one valid
payload of every cluster bus message (and a few edge cases), built from
docs/PROTOCOL.md's table with Python's struct module (an implementation
independent of src/cluster/msg.c). Run from the repository root:
    python3 tests/fuzz/corpus_msg.py
"""
import os
import struct


def u64(*v):
    return struct.pack("<%dQ" % len(v), *v)


def u32(v):
    return struct.pack("<I", v)


def u8(v):
    return struct.pack("<B", v)


def blob(b):
    return u32(len(b)) + b


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def entry(index, term, *cmd):
    rec = [b"PIER.ENTRY", b"%d" % index, b"%d" % term, b"7", b"1", u64(0x1234), b"+OK\r\n",
           b"%d" % len(cmd)] + list(cmd)
    return u64(index, term) + blob(resp(*rec))


def request(kind, keys, req, nkeys=None):
    n = len(keys) if nkeys is None else nkeys
    return u64(5, 3, 0xC1D, 9) + u8(kind) + u8(2) + u8(1) + u32(n) + u64(*keys) + blob(req)


def record(cid, seq, keys, req):
    return u64(cid, seq) + u32(len(keys)) + u64(*keys) + blob(req)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "msg")
    os.makedirs(out, exist_ok=True)
    set_kv = resp(b"SET", b"k", b"v")
    seeds = {
        "01-append": u64(4, 6, 3, 5, 1700000000000000, 8) + u32(2) +
        entry(7, 3, b"SET", b"k", b"v") + entry(8, 4),
        "01-append-heartbeat": u64(4, 8, 4, 8, 1, 8) + u32(0),
        "02-append-resp": u64(4) + u8(1) + u64(8, 1700000000000000),
        "03-vote-req": u64(5, 8, 4),
        "04-vote-resp": u64(5) + u8(1),
        "05-forward": request(0, [0x1111, 0x2222], set_kv),
        "05-forward-keyspace": request(0, [], resp(b"DBSIZE"), nkeys=0xFFFFFFFF),
        "06-forward-resp": u64(5, 3) + u8(0) + u8(0) + u64(9) + blob(b"+OK\r\n"),
        "07-record": request(0, [0x1111], set_kv),
        "08-record-resp": u64(5) + u8(1),
        "09-collect": u64(6),
        "10-collect-resp": u64(6, 2, 5, 5, 40) + u32(2) + record(1, 2, [3, 4], set_kv) +
        record(5, 6, [7], b""),
        "11-stale": record(1, 2, [3], set_kv),
        "12-gc": u64(1, 2) + u32(2) + u64(3, 4),
        "13-prevote-req": u64(6, 8, 4),
        "14-prevote-resp": u64(6) + u8(0),
        "15-ping": b"",
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
