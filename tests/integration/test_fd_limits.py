"""File descriptor limits and overload (issue 12, item 8).

Redis's behaviour: at start the soft RLIMIT_NOFILE is raised toward
maxclients + 32 (pier: + its own reserve), or maxclients is lowered to what
the limit allows with a warning; CONFIG SET maxclients above the limit is
refused; a client over maxclients gets "-ERR max number of clients reached"
and is closed. Running out of descriptors anyway (the limit lowered under a
running server) must not spin the accept loop nor flood the log, and no
client may be left hanging without an answer.

Servers here run under `prlimit --nofile=SOFT:HARD` (the tests run as root,
but without CAP_SYS_RESOURCE a process cannot raise its hard limit; pier never
tries). A limit is lowered under a running server with `prlimit --pid`.
"""
import errno
import os
import selectors
import socket
import subprocess
import time

import pytest

from conftest import IS_REDIS, Server, pier_only, rawcmd, target_kind, wait_for

MAXCLIENTS_ERR = b"-ERR max number of clients reached\r\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class LimitedServer(Server):
    """A server started under `prlimit --nofile=soft:hard`."""

    def __init__(self, kind, workdir, extra_args=(), nofile=(1024, 1024)):
        super().__init__(kind, workdir, extra_args)
        self.nofile = nofile

    def argv(self):
        return ["prlimit", "--nofile=%d:%d" % self.nofile, "--"] + super().argv()


@pytest.fixture
def limited(tmp_path):
    started = []

    def _start(*extra_args, nofile=(1024, 1024)):
        s = LimitedServer(target_kind(), tmp_path / f"l{len(started)}", extra_args, nofile)
        s.start()
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


def log_lines(srv):
    return srv.stderr_path.read_bytes().decode("utf-8", "replace").splitlines() + \
        srv.stdout_path.read_bytes().decode("utf-8", "replace").splitlines()


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no Max open files line")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def maxclients(srv):
    c = srv.client()
    try:
        return int(rawcmd(c, "CONFIG", "GET", "maxclients")[1])
    finally:
        c.close()


def storm(port, n, deadline_s=15.0):
    """Open n connections at once (non-blocking connects), send PING on each,
    and classify each: 'ok' (answered +PONG, still open), 'rejected' (got the
    max-clients error, then the close), 'bad' (anything else: another reply,
    a close without the error) or 'hung' (no answer before the deadline).
    Returns (counts, the sockets still open: the 'ok' and 'hung' clients)."""
    sel = selectors.DefaultSelector()
    conns = {}
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(("127.0.0.1", port))
        assert rc in (0, errno.EINPROGRESS), os.strerror(rc)
        conns[s] = {"buf": b"", "sent": False}
        sel.register(s, selectors.EVENT_WRITE)
    counts = {"ok": 0, "rejected": 0, "bad": 0, "hung": 0}
    still_open = []
    end = time.monotonic() + deadline_s

    def finish(s, outcome):
        counts[outcome] += 1
        sel.unregister(s)
        st = conns.pop(s)
        st["outcome"] = outcome
        if outcome in ("ok", "hung"):
            still_open.append(s)
        else:
            s.close()

    while conns and time.monotonic() < end:
        for key, ev in sel.select(timeout=0.5):
            s = key.fileobj
            st = conns[s]
            if not st["sent"]:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(s, "bad")
                    continue
                s.send(b"*1\r\n$4\r\nPING\r\n")
                st["sent"] = True
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if data:
                st["buf"] += data
                if st["buf"] == b"+PONG\r\n":
                    finish(s, "ok")
                elif not MAXCLIENTS_ERR.startswith(st["buf"]) and st["buf"] != MAXCLIENTS_ERR:
                    finish(s, "bad")
                continue
            finish(s, "rejected" if st["buf"] == MAXCLIENTS_ERR else "bad")
    for s in list(conns):
        finish(s, "hung")
    sel.close()
    return counts, still_open


def close_all(socks):
    for s in socks:
        s.close()


def cpu_share(pid, window_s=3.0):
    """Share of one core the process used over window_s."""
    t0, c0 = time.monotonic(), cpu_seconds(pid)
    time.sleep(window_s)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


# --- start-up adjustment -------------------------------------------------------

def test_low_fd_limit_lowers_maxclients(limited):
    srv = limited(nofile=(1024, 1024))
    n = maxclients(srv)
    assert n <= 1024 - 32
    assert n >= 900
    log = "\n".join(log_lines(srv))
    assert "You requested maxclients of 10000 requiring at least" in log, log
    assert f"maxclients has been reduced to {n} to compensate for low ulimit" in log, log
    c = srv.client()
    # Redis's refusal, and the value stays.
    with pytest.raises(Exception) as ei:
        rawcmd(c, "CONFIG", "SET", "maxclients", "5000")
    assert str(ei.value) == (
        "CONFIG SET failed (possibly related to argument 'maxclients') - The operating system "
        f"is not able to handle the specified number of clients, try with {n}")
    assert maxclients(srv) == n
    assert rawcmd(c, "CONFIG", "SET", "maxclients", str(n - 100)) == b"OK"
    assert rawcmd(c, "CONFIG", "SET", "maxclients", str(n)) == b"OK"
    assert maxclients(srv) == n


@pier_only
def test_fd_limit_raised_toward_maxclients(limited):
    srv = limited(nofile=(1024, 20000))
    assert maxclients(srv) == 10000
    soft = soft_nofile(srv.proc.pid)
    assert 10000 + 32 <= soft <= 20000
    log = "\n".join(log_lines(srv))
    assert f"Increased maximum number of open files to {soft} (it was originally set to 1024)." \
        in log, log
    c = srv.client()
    # Above the soft limit but within the hard one: raised again, accepted.
    assert rawcmd(c, "CONFIG", "SET", "maxclients", "15000") == b"OK"
    assert soft_nofile(srv.proc.pid) >= 15000 + 32
    with pytest.raises(Exception) as ei:
        rawcmd(c, "CONFIG", "SET", "maxclients", "30000")
    assert "not able to handle the specified number of clients, try with" in str(ei.value)
    assert maxclients(srv) == 15000


@pier_only
def test_fd_limit_too_low_to_start(tmp_path):
    srv = LimitedServer("pier", tmp_path / "tiny", (), nofile=(24, 24))
    with pytest.raises(BaseException):
        srv.start(timeout=5)
    assert srv.proc.returncode == 1
    log = "\n".join(log_lines(srv))
    assert "Your current 'ulimit -n' of 24 is not enough for the server to start." in log, log


# --- overload ----------------------------------------------------------------

def overload(srv, nclients):
    """Storm the server with nclients, hold the ones still open for a few
    seconds, and check: every client answered (admitted, or refused with the
    error and closed), and the server stays quiet meanwhile: under 15% of a
    core. A bound to catch a spinning accept loop, not a benchmark: the
    sanitizer build holding ~1000 clients idle uses 0-3% (both I/O models);
    the unfixed accept loop, spinning on clients left in the backlog, used
    20-75% even with other jobs loading the machine to 5x its cores."""
    counts, ok = storm(srv.port, nclients)
    try:
        share = cpu_share(srv.proc.pid)
    finally:
        close_all(ok)
    assert counts["hung"] == 0 and counts["bad"] == 0 and share < 0.15, (counts, share)
    assert counts["ok"] + counts["rejected"] == nclients, counts
    assert counts["rejected"] > 0, counts
    return counts


@pytest.mark.parametrize("io", ["loop", "thread"])
def test_1500_clients_under_ulimit_1024(limited, io):
    args = () if io == "loop" or IS_REDIS else ("--io", "thread")
    srv = limited(*args, nofile=(1024, 1024))
    n = maxclients(srv)
    counts = overload(srv, 1500)
    # Every slot below maxclients was usable (the control clients hold none now).
    assert counts["ok"] >= n - 5, (counts, n)
    lines = log_lines(srv)
    assert len(lines) < 100, "\n".join(lines[-50:])
    # Afterwards the server serves new clients as before.
    c = srv.client()
    assert c.ping() is True


@pier_only
@pytest.mark.parametrize("io", ["loop", "thread"])
def test_out_of_fds_does_not_spin(limited, io):
    """Descriptors run out below maxclients (the limit lowered under the
    running server): each client beyond gets the error and a close (the
    reserve descriptor), the listener is not polled in a loop, the log holds
    a few lines, and once descriptors are free again clients are served."""
    args = ("--io", "thread") if io == "thread" else ()
    srv = limited(*args, nofile=(1024, 1024))
    pid = srv.proc.pid
    ctl = srv.client()
    ctl.ping()
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=200:1024"], check=True)
    try:
        # Twice: the reserve descriptor must be there again for the second
        # storm (another thread may take its slot during the first).
        for _ in range(2):
            counts = overload(srv, 400)
            assert 100 <= counts["ok"] < 200, counts
            wait_for(lambda: int(ctl.info("clients")["connected_clients"]) == 1, timeout=10)
        lines = log_lines(srv)
        assert len(lines) < 40, "\n".join(lines[-40:])
        assert any("Too many open files" in l for l in lines), "\n".join(lines)
    finally:
        subprocess.run(["prlimit", "--pid", str(pid), "--nofile=1024:1024"], check=True)
    assert ctl.ping() is True
    counts, ok = storm(srv.port, 300)
    close_all(ok)
    assert counts == {"ok": 300, "rejected": 0, "bad": 0, "hung": 0}
