"""Log lines a peer can repeat are rate-limited (issue 12, item 8).

A client that connects, misbehaves and is closed, over and over, must not
write a line per attempt: each such line (protocol errors, client kills,
accepted/closed at verbose) prints at most a burst per interval, and the
next line printed says how many were suppressed."""
import socket

import pytest

from conftest import encode_command, pier_only, wait_for

pytestmark = pier_only

ATTEMPTS = 600


def log_text(srv):
    return srv.stderr_path.read_bytes().decode("utf-8", "replace")


def closed_after(port, payload):
    """Connect, send payload, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass


def test_protocol_errors_at_verbose(start_server):
    srv = start_server("--loglevel", "verbose")
    for _ in range(ATTEMPTS):
        closed_after(srv.port, b"*1\r\n$x\r\n")
    r = srv.client()
    wait_for(lambda: r.info("clients")["connected_clients"] == 1, timeout=10)
    text = log_text(srv)
    lines = text.splitlines()
    # 600 attempts wrote 1,800 lines (accepted, protocol error, closed).
    assert len(lines) < 150, "\n".join(lines[-60:])
    assert "protocol error from client" in text

    def reported():
        closed_after(srv.port, b"*1\r\n$x\r\n")
        return "similar lines suppressed" in log_text(srv)
    # Once the window (5 s) has passed, the next line tells what was dropped.
    wait_for(reported, timeout=20, interval=0.2)


def test_output_buffer_kills_at_normal(start_server):
    srv = start_server("--client-output-buffer-limit", "normal 64kb 0 0")
    r = srv.client()
    r.set("big", b"x" * 200_000)
    get_big = encode_command("GET", "big")
    for _ in range(ATTEMPTS // 2):
        closed_after(srv.port, get_big)
    wait_for(lambda: r.info("clients")["connected_clients"] == 1, timeout=10)
    text = log_text(srv)
    kills = [l for l in text.splitlines() if "closed for overcoming of output buffer limits" in l]
    assert 1 <= len(kills) < 30, "\n".join(kills[-30:])
