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


# ---------------------------------------------------------------------------
# config files

class ConfServer(Server):
    """pier started as `pier-server <conf> <flags...>` (the harness's own
    flags would hide what the file sets)."""

    def __init__(self, workdir, conf, *flags, port=None):
        super().__init__("pier", workdir, (), port)
        self.conf = Path(conf)
        self.flags = [str(f) for f in flags]

    def argv(self):
        return [PIER_BIN, str(self.conf), "--port", str(self.port)] + self.flags


def no_sanitizer_report(text):
    for m in SANITIZER_MARKERS:
        assert m not in text, text


def test_long_comments_and_quotes_in_comments_are_skipped(tmp_path):
    conf = tmp_path / "pier.conf"
    words = " ".join(f"word{i}" for i in range(40))
    conf.write_text(f"# {words}\n   # indented comment with an 'unbalanced quote\n"
                    f"#{words}\n\ttimeout 7\n\n# trailing {words}\n")
    srv = ConfServer(tmp_path, conf, "--save", "").start()
    try:
        assert srv.client().config_get("timeout") == {"timeout": "7"}
    finally:
        srv.stop()


@pytest.mark.parametrize("line,what", [
    ("no-such-option 1", "no-such-option"),
    ("maxmemory-polcy allkeys-lru", "maxmemory-polcy"),  # a typo of a pier option
    ('timeout "7', "unbalanced quotes"),
    ("bind " + " ".join(["127.0.0.1"] * 200), "too many arguments"),
    ("dir " + "d" * 2000, "too long"),  # was cut to 1023 bytes without a word
    ("timeout 1\0", "NUL byte"),
])
def test_bad_config_lines_stop_startup_naming_file_and_line(tmp_path, line, what):
    conf = tmp_path / "pier.conf"
    conf.write_text("# first line\n" + line + "\n")
    rc, out, err = run_pier(tmp_path, conf, "--port", "0")
    assert rc == 2, (out, err)
    assert f"{conf}:2:" in err and what in err, err


def test_too_long_flag_value_stops_startup(tmp_path):
    rc, out, err = run_pier(tmp_path, "--port", "0", "--dir", "d" * 2000)
    assert rc == 2 and "'--dir' is too long" in err, err


def test_redis_options_pier_lacks_get_one_warning_each(tmp_path):
    conf = tmp_path / "pier.conf"
    conf.write_text("rdbcompression yes\nlazyfree-lazy-eviction no\nrdbcompression no\n"
                    "notify-keyspace-events \"\"\ndatabases 16\nloglevel notice\n")
    srv = ConfServer(tmp_path, conf, "--save", "", "--supervised", "systemd").start()
    try:
        c = srv.client()
        assert c.config_get("loglevel") == {"loglevel": "notice"}
        assert c.config_get("databases") == {"databases": "1"}
        assert c.config_get("rdbcompression") == {}  # skipped, not stored
    finally:
        srv.stop()
    log = srv.stderr_path.read_text()
    for lineno, name in ((1, "rdbcompression"), (2, "lazyfree-lazy-eviction"),
                         (3, "rdbcompression"), (4, "notify-keyspace-events")):
        assert f"{conf}:{lineno}: '{name}' is a Redis option pier does not implement" in log, log
    assert "command line: 'supervised' is a Redis option pier does not implement" in log, log
    assert "databases 16" in log and "one database" in log, log


def redis_conf_copy(tmp_path):
    if not DEBIAN_REDIS_CONF.is_file():
        pytest.fail(f"{DEBIAN_REDIS_CONF} missing: `make deps` installs redis-server")
    conf = tmp_path / "redis.conf"
    shutil.copyfile(DEBIAN_REDIS_CONF, conf)
    return conf


def test_debian_redis_conf_starts(tmp_path):
    """Debian's /etc/redis/redis.conf as it is, with the port, dir, pidfile,
    logfile and daemonize overridden on the command line (as Debian's
    systemd unit overrides daemonize and supervised)."""
    conf = redis_conf_copy(tmp_path)
    log = tmp_path / "pier.log"
    srv = ConfServer(tmp_path, conf, "--dir", tmp_path, "--pidfile", tmp_path / "pier.pid",
                     "--logfile", log, "--daemonize", "no", "--supervised", "systemd").start()
    try:
        c = srv.client()
        assert c.ping() is True
        assert c.set("k", "v") and c.get("k") == b"v"
        assert c.config_get("loglevel") == {"loglevel": "notice"}
        assert c.config_get("dbfilename") == {"dbfilename": "dump.rdb"}
        assert c.config_get("appendfilename") == {"appendfilename": "appendonly.aof"}
        assert c.config_get("bind") == {"bind": "127.0.0.1 -::1"}
        assert int(rawcmd(c, "CONFIG", "GET", "port")[1]) == srv.port
        assert (tmp_path / "pier.pid").read_text().strip() == str(srv.proc.pid)
        text = log.read_text()
        assert "Redis option pier does not implement" in text
        # one warning per line, and only for Redis options
        warned = re.findall(r"redis\.conf:(\d+): '([^']+)' is a Redis option", text)
        assert len(warned) == len({n for n, _ in warned})
        assert {"rdbcompression", "jemalloc-bg-thread", "lazyfree-lazy-eviction"} <= \
            {name for _, name in warned}
    finally:
        srv.stop()
    text = log.read_text()
    no_sanitizer_report(text)
    assert "bye" in text
    assert not (tmp_path / "pier.pid").exists()


def test_debian_redis_conf_daemonizes(tmp_path):
    """daemonize yes (as the file says): the command returns 0 once the
    server serves; the daemon writes its pidfile and stops on SIGTERM."""
    conf = redis_conf_copy(tmp_path)
    port, log, pidfile = free_port(), tmp_path / "pier.log", tmp_path / "pier.pid"
    rc, out, err = run_pier(tmp_path, conf, "--port", port, "--dir", tmp_path,
                            "--pidfile", pidfile, "--logfile", log)
    assert rc == 0, (out, err, log.read_text() if log.exists() else "")
    pid = int(pidfile.read_text())
    try:
        srv = Server("pier", tmp_path / "probe", port=port)
        c = srv.client()
        assert c.ping() is True
        assert f"port {port}" in log.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pidfile.exists(), timeout=15, msg="daemon to remove its pidfile")
    wait_for(lambda: "bye" in log.read_text(), timeout=15, msg="daemon to log bye")
    no_sanitizer_report(log.read_text())


def test_daemonize_reports_fatal_errors_to_the_terminal(start_server, tmp_path):
    busy = start_server()
    rc, out, err = run_pier(tmp_path, "--port", busy.port, "--save", "", "--daemonize", "yes",
                            "--loglevel", "silent", "--logfile", tmp_path / "d.log")
    assert rc == 1, (out, err)
    assert "Address already in use" in err, err


# ---------------------------------------------------------------------------
# --help, --version, the ready line

def test_help_lists_every_option_with_default_and_meaning(start_server, tmp_path):
    rc, out, err = run_pier(tmp_path, "--help")
    assert rc == 0 and err == "", err
    names = start_server().client().config_get("*").keys()
    for name in list(names) + ["rename-command"]:
        m = re.search(r"^  --%s   \(default ([^)]*)\)" % re.escape(name), out, re.M)
        assert m, f"--help lacks {name}:\n{out}"
        meaning = out[m.end():].split("\n")[1].strip()
        assert meaning and not meaning.startswith("--"), name
    assert re.search(r"^  --port   \(default 7379\)$", out, re.M)
    assert re.search(r"^  --maxmemory-policy   \(default noeviction\) \[runtime\]$", out, re.M)
    assert re.search(r"^  --proto-max-bulk-len   \(default 512mb\) \[runtime\]$", out, re.M)
    assert "bogus" not in out


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(tmp_path, flag):
    rc, out, err = run_pier(tmp_path, flag)
    assert rc == 0 and re.match(r"pier-server v=\d+\.\d+\.\d+ ", out), (out, err)


def ready_line(srv):
    """The ready line: logged just after the listeners open, so a client's
    first PING may come before it is written."""
    found = []

    def seen():
        found[:] = [l for l in srv.stderr_path.read_text().splitlines() if " ready: " in l]
        return bool(found)

    wait_for(seen, timeout=10, msg="the ready line")
    return found[0]


def test_ready_line_names_ports_persistence_and_dir(start_server, tmp_path):
    srv = start_server("--appendonly", "yes", "--appendfsync", "always", "--save", "900 1",
                       "--dir", tmp_path)
    batch = int(rawcmd(srv.client(), "CONFIG", "GET", "batch-port")[1])
    line = ready_line(srv)
    assert f"port {srv.port}," in line and f"batch port {batch}," in line, line
    assert "cluster bus port off" in line, line
    assert "AOF on (appendfsync always)" in line, line
    assert "snapshots dump.pier, save 900 1" in line, line
    assert f"dir {tmp_path.resolve()};" in line, line


def test_ready_line_without_persistence_and_batch_port(start_server):
    srv = start_server("--batch-port", "0")
    line = ready_line(srv)
    assert "batch port off" in line and "AOF off" in line and "snapshots off" in line, line


def test_cluster_node_says_how_many_log_entries_it_loaded(tmp_path):
    """A single-member cluster writes two keys, stops, and on its next start
    says how many log entries it loaded from its AOF (PING needs no leader)."""
    port, bus = free_port(), free_port()
    args = ("--dir", str(tmp_path), "--appendonly", "yes", "--cluster-node-id", "1",
            "--cluster-nodes", f"1@127.0.0.1:{port}@{bus}")
    srv = Server("pier", tmp_path / "run1", args, port=port).start()
    c = srv.client()
    wait_for(lambda: c.info("cluster").get("cluster_serving") == 1, timeout=15,
             msg="the node to serve")
    assert c.set("a", "1") and c.set("b", "2")
    srv.stop()
    first = srv.stderr_path.read_text()
    assert "loaded 0 log entries from the AOF" in first, first
    srv2 = Server("pier", tmp_path / "run2", args, port=port).start()
    srv2.stop()
    log = srv2.stderr_path.read_text()
    m = re.search(r"cluster: node 1 of 1, term \d+: loaded (\d+) log entries from the AOF, "
                  r"(\d+) committed and applied \((\d+) keys\)", log)
    assert m, log
    # the first term's no-op entry, its end-of-recovery entry, then one
    # entry per SET
    assert int(m.group(1)) == int(m.group(2)) == 4 and int(m.group(3)) == 2, log
    assert f"cluster bus port {bus}" in log, log


def test_a_redis_rdb_as_dbfilename_is_named_as_such(tmp_path):
    """Debian's redis.conf says dbfilename dump.rdb: in a directory where
    Redis left its RDB file, start-up stops and says what the file is."""
    (tmp_path / "dump.rdb").write_bytes(b"REDIS0010\xfa\x09redis-ver\x067.0.15\xff" + b"\0" * 8)
    rc, out, err = run_pier(tmp_path, "--port", "0", "--dbfilename", "dump.rdb",
                            "--loglevel", "silent")
    assert rc == 1, (out, err)
    assert "dump.rdb is a Redis RDB file" in err, err
