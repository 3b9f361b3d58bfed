"""Strangers on the cluster bus (issue 12): a process that knows the node
list, and so the membership hash, but not the cluster secret, must not get
a link, a log entry or a leader change."""
import socket
import time

import pytest
import redis

import forge
from cluster import netns_available


def _wait(cond, timeout, what, cluster):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out: {what}\n{cluster.infos()}"
        time.sleep(0.02)


def _settled(cluster):
    """Every node applied the leader's whole log and agrees on term and
    leader; returns the INFO of each node then."""
    infos = cluster.infos()
    if any(v is None for v in infos.values()):
        return None
    lasts = {int(v["cluster_last_index"]) for v in infos.values()}
    applied = {int(v["cluster_applied_index"]) for v in infos.values()}
    terms = {int(v["cluster_term"]) for v in infos.values()}
    leaders = {int(v["cluster_leader_id"]) for v in infos.values()}
    if len(lasts) == 1 and applied == lasts and len(terms) == 1 and len(leaders) == 1:
        return infos
    return None


def test_membership_hash_port():
    for data, want in forge.VECTORS.items():
        assert forge.hash_bytes(data, forge.MEMBERSHIP_SEED) == want, data


def test_forged_peer_is_refused(make_cluster):
    # loopback: the forger must reach the bus port (the netns bus bridge has
    # no address in the test's namespace)
    c = make_cluster(3, net="loopback")
    leader = c.wait_all_serving()
    assert leader.client().set("before", "1") is True
    infos = _wait(lambda: _settled(c), 10, "the write applied everywhere", c)
    term = int(infos[leader.id]["cluster_term"])
    last = int(infos[leader.id]["cluster_last_index"])
    # the forger claims to be node 1, so it talks to a node that node 1 dials
    target = next((nd for nd in c.nodes.values() if nd.id >= 2 and nd is not leader),
                  c.nodes[2])
    log_at = len(target.log_text())
    mhash = forge.membership_hash([(nd.id, nd.bus_host, nd.port, nd.port + 10000)
                                   for nd in c.nodes.values()])
    closed = forge.attack(target.bus_host, target.port + 10000, 1, mhash,
                          term=term + 5, prev=last, prev_term=term)
    assert closed == [True, True], "the node kept a forged connection open"
    # every byte the forger sent has been read (the node closed both
    # connections); now a barrier write through the leader
    assert leader.client().set("after", "1") is True
    infos = _wait(lambda: _settled(c), 10, "the barrier write applied everywhere", c)
    seen = {nd.id: (nd.client().get("injected"), int(infos[nd.id]["cluster_term"]),
                    int(infos[nd.id]["cluster_leader_id"])) for nd in c.nodes.values()}
    want = {nd.id: (None, term, leader.id) for nd in c.nodes.values()}
    assert seen == want, "(GET injected, term, leader) per node: forged entry applied or " \
                         "leader changed"
    log = target.log_text()[log_at:]
    assert "refused" in log, log
    # the forged hello never replaced node 1's real link
    assert "node 1 reconnected" not in log, log


PASSWORD = "restart-keeps-this-password"


def _cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _raw_reply(host, port, payload, timeout=2.0):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload)
        return s.recv(4096)


def test_self_restart_keeps_every_option(make_cluster):
    """A deposed leader whose speculative writes the new leader did not
    keep restarts itself from its AOF (raft.c restart_from_aof). It used to
    re-execute its command line, from which requirepass and cluster-secret
    had been wiped: it came back without a password, or did not come back.
    Every option must survive, including runtime CONFIG SETs."""
    if not netns_available():
        pytest.skip("needs network namespaces: an isolated leader must keep taking writes")
    c = make_cluster(3, password=PASSWORD, secret_as_option=True,
                     extra_args=["--maxmemory", "1gb", "--maxmemory-policy", "allkeys-lru",
                                 "--timeout", "3600", "--rename-command", "FLUSHALL", ""])
    old = c.wait_all_serving()
    r = old.client()
    r.config_set("maxmemory-samples", 7)   # runtime changes survive too
    r.config_set("lfu-log-factor", 3)
    before = r.config_get("*")
    last = int(old.info()["cluster_last_index"])
    c.partition(old)
    # a write it executes at once (speculatively) and can never commit
    spec = socket.create_connection((old.host, old.port), timeout=2)
    spec.sendall(_cmd("AUTH", PASSWORD) + _cmd("SET", "spec", "1"))
    _wait(lambda: int(old.info()["cluster_last_index"]) > last, 10,
          "the isolated leader executing the write", c)
    new = c.wait_leader(exclude=[old], timeout=10)
    assert new.client().set("after", "1") is True
    log_at = len(old.log_text())
    pid = old.proc.pid
    c.heal()
    _wait(lambda: "restarting from the AOF" in old.log_text()[log_at:] or not old.alive(), 20,
          "the deposed leader restarting itself", c)
    spec.close()

    def rejoined():
        assert old.alive(), "the node did not come back from its restart\n" + old.logs()
        inf = old.info()
        try:
            return inf and int(inf["cluster_peers_connected"]) == 2 and \
                old.client().get("after") == b"1"
        except redis.ConnectionError:
            return False  # the old image, closing its connections as it restarts
    _wait(rejoined, 20, "the restarted node rejoining (bus secret kept)", c)
    assert old.proc.pid == pid  # restarted in place (execve)
    assert _raw_reply(old.host, old.port, _cmd("PING")) == b"-NOAUTH Authentication required.\r\n"
    r = old.client()
    assert r.config_get("*") == before
    # the speculative write was undone, or (its client's request handed on
    # to the new leader when the node stepped down) committed there
    assert r.get("spec") == new.client().get("spec")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.execute_command("FLUSHALL")
    for what in ("cmdline", "environ"):
        with open(f"/proc/{pid}/{what}", "rb") as f:
            text = f.read()
        assert PASSWORD.encode() not in text and c.secret.encode() not in text, what
    log = old.log_text()
    assert PASSWORD not in log and c.secret not in log
