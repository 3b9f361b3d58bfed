"""Persistence failures (issue 12, items 5 and 7): a full disk under the AOF
(appendfsync everysec and always) and a snapshot that cannot be written.

pier must never acknowledge a write it could not log: writes are refused
with Redis's -MISCONF text while the AOF cannot be written or (with
stop-writes-on-bgsave-error) while the last snapshot failed, it recovers
by itself once the disk takes writes again, and a shutdown whose final
flush or save fails says so and exits non-zero.

The disks are small tmpfs mounts (the tests run as root), unmounted at
teardown after every server on them is gone."""
import os
import time
import subprocess
import threading

import pytest
import redis

from conftest import Server, pier_only, rawcmd, wait_for

pytestmark = pier_only

AOF_MISCONF = "MISCONF Errors writing to the AOF file: No space left on device"
RDB_MISCONF = ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable "
               "to persist to disk. Commands that may modify the data set are disabled, "
               "because this instance is configured to report errors during writes if RDB "
               "snapshotting fails (stop-writes-on-bgsave-error option). Please check the "
               "Redis logs for details about the RDB error.")
SHUTDOWN_ERR = "Errors trying to SHUTDOWN. Check logs."
VALUE_LEN = 2000


class Disk:
    """A 3 MB tmpfs at <tmp>/disk, and the servers started on it (their
    logs go to <tmp>, off the small disk)."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.dir = tmp_path / "disk"
        self.dir.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(self.dir)],
                       check=True)
        self.servers = []

    def start(self, *args):
        s = Server("pier", self.root, ("--dir", str(self.dir)) + args)
        self.servers.append(s)
        return s.start()

    def fill(self, leave_kb):
        """A filler file that leaves about leave_kb free."""
        st = os.statvfs(self.dir)
        free = st.f_bavail * st.f_frsize
        size = max(free - leave_kb * 1024, 0)
        with open(self.dir / "filler", "wb") as f:
            f.write(b"\0" * size)

    def free_space(self):
        (self.dir / "filler").unlink()

    def remount(self, mode):
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.dir)], check=True)

    def close(self):
        for s in self.servers:
            for c in s.clients:
                try:
                    c.close()
                except Exception:
                    pass
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
            s._close_files()
        subprocess.run(["umount", str(self.dir)], check=True)


@pytest.fixture
def disk(tmp_path):
    d = Disk(tmp_path)
    yield d
    d.close()


def persistence(c):
    return c.info("persistence")


def value(tag, i):
    head = f"{tag}:{i}:".encode()
    return head + b"v" * (VALUE_LEN - len(head))


class Writers:
    """Threads that SET distinct keys until stopped, each remembering the
    writes the server acknowledged (+OK) and counting -MISCONF refusals."""

    def __init__(self, srv, n=4):
        self.srv = srv
        self.stop = threading.Event()
        self.acked = {}
        self.misconf = 0
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(t,), daemon=True)
                        for t in range(n)]
        for t in self.threads:
            t.start()

    def run(self, t):
        c = redis.Redis(host=self.srv.host, port=self.srv.port, socket_timeout=120)
        i = 0
        try:
            while not self.stop.is_set():
                key, val = f"w{t}:{i}", value(f"w{t}", i)
                try:
                    assert c.set(key, val) is True
                except redis.ResponseError as e:
                    with self.lock:
                        if not str(e).startswith("MISCONF"):
                            self.errors.append(str(e))
                        self.misconf += 1
                    self.stop.wait(0.005)
                    continue
                with self.lock:
                    self.acked[key] = val
                i += 1
        except (redis.ConnectionError, ConnectionError, OSError):
            pass  # the server was killed or stopped
        finally:
            c.close()

    def count(self):
        with self.lock:
            return len(self.acked)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a writer is stuck"
        assert not self.errors, self.errors[:3]
        return dict(self.acked)


def check_all_present(srv, acked):
    c = srv.client()
    missing = [k for k, v in acked.items() if c.get(k) != v]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost, " \
                        f"e.g. {missing[:5]}\n{srv.logs()}"


def aof_args(fsync):
    return ("--appendonly", "yes", "--appendfsync", fsync,
            "--auto-aof-rewrite-percentage", "0")


def fill_until_misconf(disk, srv, fsync):
    """Start writers on an almost full disk; return them once the AOF
    failed and a new write is refused with -MISCONF."""
    disk.fill(leave_kb=300)
    w = Writers(srv)
    probe = srv.client()
    wait_for(lambda: persistence(probe)["aof_last_write_status"] == "err", timeout=60,
             msg="the AOF to fail on the full disk")
    with pytest.raises(redis.ResponseError) as e:
        probe.set("probe", "x")
    assert str(e.value) == AOF_MISCONF
    with pytest.raises(redis.ResponseError) as e:  # as Redis: PING too
        probe.ping()
    assert str(e.value) == AOF_MISCONF
    assert probe.get("w0:0") == value("w0", 0)  # reads go on
    return w


@pytest.mark.parametrize("fsync,io", [("everysec", "loop"), ("always", "loop"),
                                      ("always", "thread")])
def test_aof_disk_full_refuses_writes_then_recovers(disk, fsync, io):
    srv = disk.start(*aof_args(fsync), "--io", io)
    w = fill_until_misconf(disk, srv, fsync)
    probe = srv.client()
    disk.free_space()
    wait_for(lambda: persistence(probe)["aof_last_write_status"] == "ok", timeout=30,
             msg="the AOF to recover once space is free")
    assert probe.set("probe", "after") is True
    assert probe.ping() is True
    n = w.count()
    wait_for(lambda: w.count() >= n + 40, timeout=30, msg="writes to be accepted again")
    acked = w.join()
    assert "AOF write error looks solved" in srv.logs()
    srv.stop()  # exit code 0: everything was flushed
    srv2 = disk.start(*aof_args(fsync))
    check_all_present(srv2, acked)
    assert srv2.client().get("probe") == b"after"
    srv2.stop()


@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_aof_disk_full_crash_keeps_every_acknowledged_write(disk, fsync):
    """SIGKILL while the disk is full: no acknowledged write may be lost
    (pier holds the reply of a write whose record is not in the file)."""
    srv = disk.start(*aof_args(fsync))
    w = fill_until_misconf(disk, srv, fsync)
    srv.proc.kill()
    srv.proc.wait()
    acked = w.join()
    assert acked
    disk.free_space()
    srv2 = disk.start(*aof_args(fsync))
    check_all_present(srv2, acked)
    srv2.stop()


def test_aof_disk_full_sigterm_exits_nonzero(disk):
    """The final flush fails: not a clean exit, and the log says why."""
    srv = disk.start(*aof_args("everysec"))
    w = fill_until_misconf(disk, srv, "everysec")
    srv.proc.terminate()
    rc = srv.proc.wait(timeout=30)
    acked = w.join()
    srv._close_files()
    assert rc != 0, srv.logs()
    assert "final AOF flush failed" in srv.logs()
    disk.free_space()
    srv2 = disk.start(*aof_args("everysec"))
    check_all_present(srv2, acked)
    srv2.stop()


def ack_or_write_error(c, probe, timeout=60):
    """Wait for the ACK of the batch just sent; True instead when the AOF
    reports a write error first (that batch's ACK is then held back, so
    waiting for it alone would hang until the disk is freed)."""
    from test_batch import ack_of
    deadline = time.monotonic() + timeout
    c.sock.settimeout(0.2)
    try:
        while time.monotonic() < deadline:
            if persistence(probe)["aof_last_write_status"] == "err":
                return True
            try:
                ack_of(c)
                return False
            except TimeoutError:
                continue
        raise AssertionError("neither an ACK nor an AOF write error")
    finally:
        c.sock.settimeout(60)


def test_batch_publisher_acks_wait_for_the_aof(disk):
    """The batch port: an ACK promises what a +OK does. A batch the AOF
    cannot take is not acknowledged; a new one is refused with an ERROR
    frame carrying the -MISCONF text; everything acknowledged survives."""
    from conftest import free_port
    from test_batch import ACK, ERROR, ack_of, batch_frame, publisher
    bport = free_port()
    srv = disk.start(*aof_args("always"), "--batch-port", str(bport))
    disk.fill(leave_kb=300)
    c, _ = publisher(bport, "topic")
    probe = srv.client()
    acked = 0
    for seq in range(1, 1000):
        c.send(batch_frame(seq, [b"m" * 1000] * 10))
        if ack_or_write_error(c, probe):
            break
        acked = seq
    wait_for(lambda: persistence(probe)["aof_last_write_status"] == "err", timeout=30)
    c2, _ = publisher(bport, "topic2")
    c2.send(batch_frame(1, [b"x"]))
    f = c2.frame()
    assert f.type == ERROR and b"MISCONF Errors writing to the AOF file" in f.payload, f.payload
    disk.free_space()
    wait_for(lambda: persistence(probe)["aof_last_write_status"] == "ok", timeout=30)
    # the batch that met the full disk is acknowledged now (or it was
    # acknowledged just before the failure was seen)
    c.sock.settimeout(30)
    while acked < seq:
        f, _ = ack_of(c)
        acked += 1
    assert f.type == ACK
    n = probe.xlen("topic")
    assert n == acked * 10
    srv.stop()
    srv2 = disk.start(*aof_args("always"))
    assert srv2.client().xlen("topic") == n
    srv2.stop()


# ---------------------------------------------------------------------------
# snapshots (item 7)

def fill_keys(c, n=200):
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"k{i}", value("k", i))
    pipe.execute()


def bgsave_and_wait(c):
    saves = persistence(c)["rdb_saves"]
    assert rawcmd(c, "BGSAVE") == b"Background saving started"
    wait_for(lambda: persistence(c)["rdb_bgsave_in_progress"] == 0, timeout=30,
             msg="BGSAVE to end")
    return persistence(c)["rdb_saves"] > saves


def test_failed_bgsave_stops_writes_until_a_save_succeeds(disk):
    srv = disk.start("--save", "3600 1000000")
    c = srv.client()
    fill_keys(c)
    assert c.config_get("stop-writes-on-bgsave-error") == {"stop-writes-on-bgsave-error": "yes"}
    disk.remount("ro")
    assert not bgsave_and_wait(c)
    assert persistence(c)["rdb_last_bgsave_status"] == "err"
    with pytest.raises(redis.ResponseError) as e:
        c.set("x", "1")
    assert str(e.value) == RDB_MISCONF
    with pytest.raises(redis.ResponseError) as e:
        c.ping()
    assert str(e.value) == RDB_MISCONF
    assert c.get("k1") == value("k", 1)
    # the option, and the save rules, decide (as in Redis)
    assert c.config_set("stop-writes-on-bgsave-error", "no") is True
    assert c.set("x", "1") is True
    assert c.config_set("stop-writes-on-bgsave-error", "yes") is True
    with pytest.raises(redis.ResponseError, match="^MISCONF"):
        c.set("x", "2")
    assert c.config_set("save", "") is True
    assert c.set("x", "2") is True
    assert c.config_set("save", "3600 1000000") is True
    # SHUTDOWN cannot save: it answers an error and the server stays up
    with pytest.raises(redis.ResponseError) as e:
        c.execute_command("SHUTDOWN")
    assert str(e.value) == SHUTDOWN_ERR
    assert srv.alive()
    # a successful save lifts the refusal
    disk.remount("rw")
    assert bgsave_and_wait(c)
    assert persistence(c)["rdb_last_bgsave_status"] == "ok"
    assert c.set("x", "3") is True
    assert c.ping() is True
    srv.stop()
    srv2 = disk.start("--save", "")
    assert srv2.client().get("x") == b"3"
    srv2.stop()


def test_failed_final_save_on_sigterm_exits_nonzero(disk):
    srv = disk.start("--save", "3600 1")
    c = srv.client()
    fill_keys(c, 20)
    assert c.save() is True
    c.set("later", "1")
    disk.remount("ro")
    srv.clients.clear()
    c.close()
    srv.proc.terminate()
    rc = srv.proc.wait(timeout=30)
    srv._close_files()
    assert rc != 0, srv.logs()
    assert "final snapshot" in srv.logs()
    disk.remount("rw")
    srv2 = disk.start("--save", "")
    assert srv2.client().get("k3") == value("k", 3)  # the last good save is intact
    srv2.stop()


def test_shutdown_force_exits_despite_a_failed_save(disk):
    srv = disk.start("--save", "3600 1")
    c = srv.client()
    c.set("a", "1")
    disk.remount("ro")
    with pytest.raises(redis.ResponseError) as e:
        c.execute_command("SHUTDOWN", "SAVE")
    assert str(e.value) == SHUTDOWN_ERR
    assert srv.alive()
    with pytest.raises(redis.ConnectionError):
        c.execute_command("SHUTDOWN", "FORCE")
    assert srv.proc.wait(timeout=30) == 0
    srv._close_files()
    disk.remount("rw")



# ---------------------------------------------------------------------------
# cluster mode: the AOF is the node's Raft log

class ClusterDisks:
    """Three cluster nodes, each with its dir on a tmpfs of its own."""

    def __init__(self, tmp_path):
        from conftest import free_port
        self.disks = []
        for i in range(3):
            root = tmp_path / f"n{i + 1}"
            root.mkdir()
            self.disks.append(Disk(root))
        ports = [free_port() for _ in range(3)]
        bus = [free_port() for _ in range(3)]
        members = ",".join(f"{i + 1}@127.0.0.1:{ports[i]}@{bus[i]}" for i in range(3))
        self.nodes = []
        for i, d in enumerate(self.disks):
            s = Server("pier", d.root, ("--dir", str(d.dir), "--cluster-node-id", str(i + 1),
                                        "--cluster-nodes", members, "--appendfsync", "always"),
                       port=ports[i])
            d.servers.append(s)
            self.nodes.append(s)
        for s in self.nodes:
            s.start()

    def leader(self):
        for i, s in enumerate(self.nodes):
            if not s.alive():
                continue
            try:
                inf = s.client(socket_timeout=2).info("cluster")
            except redis.RedisError:
                continue
            if inf.get("cluster_role") == "leader" and inf.get("cluster_serving") == 1:
                return i
        return None

    def close(self):
        for d in self.disks:
            d.close()


@pytest.fixture
def cluster_disks(tmp_path):
    cd = ClusterDisks(tmp_path)
    yield cd
    cd.close()


def test_cluster_leader_with_a_full_disk_refuses_writes(cluster_disks):
    cd = cluster_disks
    li = wait_for(lambda: cd.leader() is not None and cd.leader() + 1, timeout=20,
                  msg="a leader") - 1
    leader, disk = cd.nodes[li], cd.disks[li]
    c = leader.client(socket_timeout=30)
    disk.fill(leave_kb=100)
    acked, refused = {}, None
    for i in range(2000):
        try:
            assert c.set(f"k{i}", value("k", i)) is True
            acked[f"k{i}"] = value("k", i)
        except redis.ResponseError as e:
            refused = str(e)
            break
    assert refused == AOF_MISCONF, refused
    assert persistence(c)["aof_last_write_status"] == "err"
    disk.free_space()
    wait_for(lambda: persistence(c)["aof_last_write_status"] == "ok", timeout=30,
             msg="the leader's AOF to recover")
    wait_for(lambda: c.set("after", "1") is True, timeout=30, msg="writes accepted again")
    for k, v in acked.items():
        assert c.get(k) == v, k
    for s in cd.nodes:
        s.stop()


def test_cluster_follower_with_a_full_disk_does_not_acknowledge(cluster_disks):
    """The leader and one follower left, and that follower's disk full: a
    write must not be acknowledged on its word (it does not hold the
    entry); once its disk takes writes again, the write completes."""
    cd = cluster_disks
    li = wait_for(lambda: cd.leader() is not None and cd.leader() + 1, timeout=20,
                  msg="a leader") - 1
    fi, hi = [i for i in range(3) if i != li]
    leader, follower = cd.nodes[li], cd.nodes[fi]
    cd.nodes[hi].proc.kill()
    cd.nodes[hi].proc.wait()
    c = leader.client(socket_timeout=60)
    assert c.set("before", "1") is True
    cd.disks[fi].fill(leave_kb=100)
    fc = follower.client()
    done = threading.Event()
    acked = {}

    def writer():
        wc = leader.client(socket_timeout=120)
        for i in range(2000):
            if done.is_set():
                return
            assert wc.set(f"k{i}", value("k", i)) is True
            acked[f"k{i}"] = value("k", i)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    wait_for(lambda: persistence(fc)["aof_last_write_status"] == "err", timeout=60,
             msg="the follower's AOF to fail")
    n = len(acked)
    # Nothing more is acknowledged while the follower cannot store the
    # entries (today's code acknowledged them at once).
    stuck = threading.Event()
    stuck.wait(3)
    assert len(acked) <= n + 1, (n, len(acked))
    assert t.is_alive()
    cd.disks[fi].free_space()
    wait_for(lambda: len(acked) > n + 5, timeout=60, msg="writes to complete once space is free")
    done.set()
    t.join(timeout=120)
    for k, v in acked.items():
        assert c.get(k) == v, k
    for s in (leader, follower):
        s.stop()
