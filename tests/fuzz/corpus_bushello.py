#!/usr/bin/env python3
"""Write the seeds of tests/fuzz/fuzz_bushello.c into corpus/bushello/:
whole valid bus sessions (both roles) and a few broken ones, built from
docs/PROTOCOL.md with Python's own HMAC-SHA256 (an implementation
independent of src/cluster/busauth.c). Run from the repository root:
    python3 tests/fuzz/corpus_bushello.py
"""
import hashlib
import hmac
import os
import struct

SECRET = b"fuzz cluster secret, 32 bytes.."
HASH = 0x5049455242555331
DIALLER, ACCEPTOR = 1, 2
ROLE_ACCEPTOR, ROLE_DIALLER = b"\x00", b"\x01"  # byte 0: the role the harness plays


def mac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def transcript(nd, na):
    return struct.pack("<QBB", HASH, DIALLER, ACCEPTOR) + nd + na


def proof(who, t):
    return mac(SECRET, b"pier bus v2 %s proof" % who + t)


def frame(ftype, payload):
    return struct.pack("<IB", len(payload) + 1, ftype) + payload


def hello(node_id, nonce, version=2):
    return b"PIERBUS1" + struct.pack("<HBQ", version, node_id, HASH) + nonce


def signed(key, seq, ftype, payload):
    head = struct.pack("<IB", len(payload) + 1 + 16, ftype)
    return head + payload + mac(key, struct.pack("<Q", seq) + head + payload)[:16]


def frames(sender, t, payloads):
    key = mac(SECRET, b"pier bus v2 frames from the %s" % sender + t)
    return b"".join(signed(key, i, 1 + i % 14, p) for i, p in enumerate(payloads))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "bushello")
    os.makedirs(out, exist_ok=True)
    payloads = [b"", b"x", b"heartbeat" * 3, bytes(range(256)) * 4]
    nd, na = bytes([0x33]) * 32, bytes([0x11]) * 32  # the harness's acceptor nonce: 0x11
    t = transcript(nd, na)
    seeds = {
        # the harness accepts: HELLO, PROOF, frames from the dialler
        "acceptor-session": ROLE_ACCEPTOR + frame(0, hello(DIALLER, nd)) +
        frame(0, proof(b"dialler", t)) + frames(b"dialler", t, payloads),
        "acceptor-hello-only": ROLE_ACCEPTOR + frame(0, hello(DIALLER, nd)),
        "acceptor-bad-proof": ROLE_ACCEPTOR + frame(0, hello(DIALLER, nd)) + frame(0, b"\0" * 32),
        "acceptor-reflected-proof": ROLE_ACCEPTOR + frame(0, hello(DIALLER, nd)) +
        frame(0, proof(b"acceptor", t)),
        "acceptor-v1-hello": ROLE_ACCEPTOR + frame(0, hello(DIALLER, b"", version=1)),
        "acceptor-http": ROLE_ACCEPTOR + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    nd2, na2 = bytes([0x22]) * 32, bytes([0x44]) * 32  # the harness's dialler nonce: 0x22
    t2 = transcript(nd2, na2)
    seeds["dialler-session"] = ROLE_DIALLER + frame(0, hello(ACCEPTOR, na2) + proof(b"acceptor", t2)) + \
        frames(b"acceptor", t2, payloads)
    seeds["dialler-wrong-id"] = ROLE_DIALLER + frame(0, hello(3, na2) + proof(b"acceptor", t2))
    replay = frames(b"acceptor", t2, [b"once"])
    seeds["dialler-replay"] = ROLE_DIALLER + frame(0, hello(ACCEPTOR, na2) + proof(b"acceptor", t2)) + \
        replay + replay
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
