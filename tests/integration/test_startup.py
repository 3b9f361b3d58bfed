"""Start-up as a newcomer meets it: fatal errors on stderr whatever the log
level, the ready line, config files (comments, Debian's redis.conf, Redis
options pier does not implement), --help and --version, daemonize.

pier only: these are pier's own messages and flags (the Redis behaviour
they follow is named in each test)."""
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PIER_BIN, Server, free_port, pier_only, rawcmd, require_binary, wait_for

pytestmark = pier_only

DEBIAN_REDIS_CONF = Path("/etc/redis/redis.conf")
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")


def run_pier(workdir, *args, timeout=20, input_bytes=None):
    """Run pier expecting it to exit by itself; (rc, stdout, stderr)."""
    require_binary("pier")
    p = subprocess.run([PIER_BIN] + [str(a) for a in args], cwd=str(workdir),
                       capture_output=True, timeout=timeout, input=input_bytes)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    for m in SANITIZER_MARKERS:
        assert m not in out + err, out + err
    return p.returncode, out, err


def write_aof_and_stop(workdir, n=20):
    srv = Server("pier", workdir, ("--appendonly", "yes", "--dir", str(workdir))).start()
    c = srv.client()
    for i in range(n):
        c.set(f"k{i}", f"v{i}")
    srv.stop()
    return sorted((Path(workdir) / "appendonlydir").glob("*.incr.aof"))[-1]


def corrupt_second_command(incr):
    data = bytearray(incr.read_bytes())
    first = bytes(data).index(b"*3\r\n$3\r\nSET")
    second = bytes(data).index(b"*3\r\n$3\r\nSET", first + 1)
    data[second + 4] = ord("X")
    incr.write_bytes(bytes(data))
    return second


# ---------------------------------------------------------------------------
# fatal errors reach stderr whatever the log level

@pytest.mark.parametrize("level", ["silent", "warning", "normal"])
def test_busy_port_is_reported_on_stderr_at_every_level(start_server, tmp_path, level):
    srv = start_server()
    rc, out, err = run_pier(tmp_path, "--port", srv.port, "--bind", "127.0.0.1", "--save", "",
                            "--loglevel", level)
    assert rc == 1, (out, err)
    assert "Address already in use" in err and str(srv.port) in err, (out, err)


def test_corrupt_aof_is_reported_on_stderr_when_silent_and_names_the_tool(tmp_path):
    incr = write_aof_and_stop(tmp_path)
    offset = corrupt_second_command(incr)
    rc, out, err = run_pier(tmp_path, "--port", "0", "--save", "", "--appendonly", "yes",
                            "--loglevel", "silent")
    assert rc == 1, (out, err)
    assert incr.name in err and f"offset {offset}" in err, err
    manifest = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    assert "pier-check-aof" in err and str(manifest) in err, err


def test_fatal_error_goes_to_the_logfile_and_to_stderr(start_server, tmp_path):
    srv = start_server()
    logfile = tmp_path / "pier.log"
    rc, out, err = run_pier(tmp_path, "--port", srv.port, "--save", "", "--logfile", logfile)
    assert rc == 1
    assert "Address already in use" in err, err
    assert "Address already in use" in logfile.read_text()


def test_unopenable_logfile_is_reported_on_stderr(tmp_path):
    rc, out, err = run_pier(tmp_path, "--port", "0", "--save", "",
                            "--logfile", tmp_path / "no" / "such" / "dir.log")
    assert rc == 2 and "logfile" in err and "No such file" in err, (out, err)
