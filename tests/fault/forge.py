"""A forged cluster-bus peer, for tests/fault/test_security.py.

It knows what an outsider can know: the node list (it is on every node's
command line) and so the membership hash, computed here as
src/cluster/cluster.c does (a port of src/lib/hash.c's hash_bytes, checked
against vectors computed by the C code). It does not know the cluster
secret. It speaks both the old unauthenticated hello (bus version 1) and
the current handshake (version 2) with a guessed proof, and follows either
with an APPEND of a higher term carrying `SET injected forged`.
"""
import os
import socket
import struct
import time

M64 = (1 << 64) - 1
K0, K1 = 0x6A09E667F3BCC909, 0xBB67AE8584CAA73B
K2, K3 = 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1
MEMBERSHIP_SEED = 0x636c7573746572

MSG_APPEND = 1
HELLO_TYPE = 0


def _mum(a, b):
    r = (a & M64) * (b & M64)
    return (r ^ (r >> 64)) & M64


def _r64(d, i):
    return int.from_bytes(d[i:i + 8], "little")


def _r32(d, i):
    return int.from_bytes(d[i:i + 4], "little")


def hash_bytes(d: bytes, seed: int) -> int:
    """src/lib/hash.c hash_bytes."""
    n = len(d)
    seed ^= _mum(seed ^ K0, K1)
    if n <= 16:
        if n >= 4:
            mid = (n >> 3) << 2
            a = ((_r32(d, 0) << 32) | _r32(d, mid)) & M64
            b = ((_r32(d, n - 4) << 32) | _r32(d, n - 4 - mid)) & M64
        elif n > 0:
            a, b = (d[0] << 16) | (d[n >> 1] << 8) | d[n - 1], 0
        else:
            a = b = 0
    else:
        p, left = 0, n
        if left > 48:
            l1 = l2 = seed
            while True:
                seed = _mum(_r64(d, p) ^ K1, _r64(d, p + 8) ^ seed)
                l1 = _mum(_r64(d, p + 16) ^ K2, _r64(d, p + 24) ^ l1)
                l2 = _mum(_r64(d, p + 32) ^ K3, _r64(d, p + 40) ^ l2)
                p, left = p + 48, left - 48
                if left <= 48:
                    break
            seed ^= l1 ^ l2
        while left > 16:
            seed = _mum(_r64(d, p) ^ K1, _r64(d, p + 8) ^ seed)
            p, left = p + 16, left - 16
        a, b = _r64(d, p + left - 16), _r64(d, p + left - 8)
    r = (a ^ K1) * (b ^ seed)
    return _mum((r & M64) ^ K0 ^ n, (r >> 64) ^ K1)


# Computed by the C hash_bytes with MEMBERSHIP_SEED.
VECTORS = {
    b"": 0x014bea93b9d9afa5,
    b"ab": 0xc1688c27bda1c48e,
    b"abcdefg": 0x6f7074a9cfad6533,
    b"1@127.0.0.1:7001@17001;2@127.0.0.1:7002@17002;3@127.0.0.1:7003@17003;": 0x8f52c00c81c23fc7,
    b"0123456789abcdef" * 4 + b"0123456789": 0x41d587ca395565ab,
}


def membership_hash(nodes):
    """nodes: [(id, host, port, bus_port)] in cluster-nodes order."""
    text = "".join(f"{i}@{h}:{p}@{bp};" for i, h, p, bp in nodes)
    return hash_bytes(text.encode(), MEMBERSHIP_SEED)


def frame(ftype, payload):
    return struct.pack("<IB", len(payload) + 1, ftype) + payload


def hello_v1(node_id, mhash):
    return frame(HELLO_TYPE, b"PIERBUS1" + struct.pack("<HBQ", 1, node_id, mhash))


def hello_v2(node_id, mhash, nonce):
    return frame(HELLO_TYPE, b"PIERBUS1" + struct.pack("<HBQ", 2, node_id, mhash) + nonce)


def _bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def forged_entry(index, term):
    """A log entry (src/cluster/entry.h) whose record is SET injected forged."""
    parts = [b"PIER.ENTRY", b"%d" % index, b"%d" % term, b"0", b"0", b"", b"+OK\r\n",
             b"3", b"SET", b"injected", b"forged"]
    return b"*%d\r\n" % len(parts) + b"".join(_bulk(p) for p in parts)


def append_payload(term, prev, prev_term, index):
    """APPEND (docs/PROTOCOL.md): one entry at index, committed at once."""
    e = forged_entry(index, term)
    head = struct.pack("<QQQQQQI", term, prev, prev_term, index, int(time.monotonic() * 1e6),
                       index, 1)
    return head + struct.pack("<QQI", index, term, len(e)) + e


def _recv_until_closed(sock, timeout):
    """Read (and drop) until the peer closes; True if it closed in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def attack(host, bus_port, claim_id, mhash, term, prev, prev_term, timeout=5.0):
    """Two attempts against one node's bus port, each on its own connection:
    v1 hello + APPEND in one write (what worked before the bus was
    authenticated), then the v2 handshake with a guessed proof and an
    APPEND with a made-up MAC. Returns, per attempt, whether the node
    closed the connection within timeout."""
    payload = append_payload(term, prev, prev_term, prev + 1)
    closed = []
    with socket.create_connection((host, bus_port), timeout=timeout) as s:
        s.sendall(hello_v1(claim_id, mhash) + frame(MSG_APPEND, payload))
        closed.append(_recv_until_closed(s, timeout))
    with socket.create_connection((host, bus_port), timeout=timeout) as s:
        s.sendall(hello_v2(claim_id, mhash, os.urandom(32)))
        s.sendall(frame(HELLO_TYPE, os.urandom(32)))  # a guessed proof
        s.sendall(frame(MSG_APPEND, payload + os.urandom(16)))  # a made-up MAC
        closed.append(_recv_until_closed(s, timeout))
    return closed
