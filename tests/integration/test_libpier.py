"""libpier (client/pier.h) against a real pier-server: KV over RESP, and the
batch protocol publisher and subscriber (docs/PROTOCOL.md), through the C
program tests/integration/libpier_e2e.c (built as build/asan/test-libpier-e2e
by `make integration`)."""
import os
import socket
import subprocess
import time

import pytest

from conftest import IS_REDIS, REPO, free_port

E2E = REPO / "build" / "asan" / "test-libpier-e2e"

pytestmark = pytest.mark.skipif(IS_REDIS, reason="the batch protocol is pier's own")


def batch_port_listening(port, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture
def batch_server(start_server):
    """A pier server with its batch port, or skip when the server side of
    the batch protocol is not built into this pier-server yet."""
    def _start(*extra):
        port = free_port()
        s = start_server("--batch-port", str(port), *extra)
        if not batch_port_listening(port):
            pytest.skip("pier-server has no batch protocol listener on --batch-port yet "
                        "(server side of the batch path not landed)")
        s.batch_port = port
        return s
    return _start


def run_e2e(server, topic, count, codec, password=None):
    if not E2E.exists():
        pytest.fail(f"{E2E} missing: build it with `make build/asan/test-libpier-e2e`",
                    pytrace=False)
    argv = [str(E2E), "127.0.0.1", str(server.port), str(server.batch_port), topic,
            str(count), str(codec)] + ([password] if password else [])
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    p = subprocess.run(argv, capture_output=True, timeout=120, env=env)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace") + server.logs()
    assert p.stdout.strip() == b"ok %d" % count


@pytest.mark.parametrize("codec", [0, 1, 2], ids=["raw", "lz4", "zstd"])
def test_publish_subscribe_roundtrip(batch_server, codec):
    s = batch_server()
    run_e2e(s, f"e2e:{codec}", 20000, codec)
    r = s.client()
    assert r.xlen(f"e2e:{codec}") == 20000
    # Entries are ordinary stream entries with one field named data.
    first = r.xrange(f"e2e:{codec}", count=1)[0][1]
    assert list(first.keys()) == [b"data"]


def test_with_password(batch_server):
    s = batch_server("--requirepass", "s3cret")
    run_e2e(s, "e2e:auth", 2000, 1, password="s3cret")


def test_wrong_password_is_an_auth_error(batch_server):
    s = batch_server("--requirepass", "s3cret")
    argv = [str(E2E), "127.0.0.1", str(s.port), str(s.batch_port), "e2e:bad", "10", "0", "wrong"]
    p = subprocess.run(argv, capture_output=True, timeout=60)
    assert p.returncode == 1
    assert b"authentication failed" in p.stderr, p.stderr


def test_exactly_once_across_server_restart(batch_server):
    """The server restarts (SIGTERM, same AOF) while a publisher is sending:
    the publisher reconnects, resumes from HELLO_OK's sequence, and the
    stream holds every message exactly once."""
    s = batch_server("--appendonly", "yes", "--appendfsync", "always")
    count = 30000
    env = dict(os.environ, E2E_SLOW="1", ASAN_OPTIONS="detect_leaks=1:halt_on_error=1")
    argv = [str(E2E), "127.0.0.1", str(s.port), str(s.batch_port), "e2e:restart",
            str(count), "1"]
    pub = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    r = s.client()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and r.xlen("e2e:restart") < count // 4:
        time.sleep(0.02)
    assert r.xlen("e2e:restart") < count, "publisher finished before the restart"
    s.stop()
    s.start()
    out, err = pub.communicate(timeout=120)
    assert pub.returncode == 0, (out + err).decode(errors="replace") + s.logs()
    r = s.client()
    entries = r.xrange("e2e:restart")
    assert len(entries) == count
    indexes = sorted(int(fields[b"data"].split(b":", 1)[0]) for _, fields in entries)
    assert indexes == list(range(count))


# ---------------------------------------------------------------- examples/

EXAMPLES = REPO / "build" / "examples"


def example(name):
    path = EXAMPLES / name
    if not path.exists():
        pytest.fail(f"{path} missing: build it with `make examples`", pytrace=False)
    return str(path)


def test_examples_publish_and_subscribe(batch_server):
    """The programs of examples/README.md: a subscriber from the start of
    the stream, the publisher's N messages, then two XADDs over RESP (one
    with other fields than `data`): the subscriber prints every entry with
    its decoded fields, in order."""
    s = batch_server()
    node = f"127.0.0.1:{s.batch_port}"
    n = 500
    sub = subprocess.Popen([example("subscriber"), node, "orders", str(n + 2), "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p = subprocess.run([example("publisher"), node, "orders", str(n)], capture_output=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr.decode() + s.logs()
        assert p.stdout == b"published %d messages to orders\n" % n
        r = s.client()
        r.xadd("orders", {"item": "book", "qty": "2"})
        r.xadd("orders", {"data": "from redis"})
        out, err = sub.communicate(timeout=60)
    finally:
        sub.kill()
    assert sub.returncode == 0, err.decode() + s.logs()
    lines = out.decode().splitlines()
    assert len(lines) == n + 2, lines[-5:]
    ids = [tuple(map(int, l.split(" ", 1)[0].split("-"))) for l in lines]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [l.split(" ", 1)[1] for l in lines[:n]] == [f"data=message {i}" for i in range(1, n + 1)]
    assert lines[n].split(" ", 1)[1] == "item=book qty=2"
    assert lines[n + 1].split(" ", 1)[1] == "data=from redis"


@pytest.mark.parametrize("prog", ["publisher", "subscriber"])
def test_example_at_the_resp_port_fails_at_once(batch_server, prog):
    """Regression (issue 11): pointed at the RESP port, libpier waited 10 s
    for HELLO_OK and then reported a timeout. Now the RESP port answers the
    handshake with an error and libpier says what is wrong."""
    s = batch_server()
    p = subprocess.run([example(prog), f"127.0.0.1:{s.port}", "orders"], capture_output=True,
                       timeout=8)
    assert p.returncode == 1, p
    assert b"is not a pier batch port (it answered in RESP: \"-ERR Protocol error: pier batch " \
        b"protocol handshake on the RESP port" in p.stderr, p.stderr


def test_example_publisher_with_the_batch_port_off(start_server):
    """A node whose batch port is off refuses the connection: the open fails
    at once (no reconnect loop) and says the batch port may be off."""
    s = start_server("--batch-port", "0")
    port = free_port()  # nothing listens there
    p = subprocess.run([example("publisher"), f"127.0.0.1:{port}", "orders"], capture_output=True,
                       timeout=4)
    assert p.returncode == 1, p
    assert b"Connection refused (is the batch port on?" in p.stderr, p.stderr
    assert s.client().ping()
