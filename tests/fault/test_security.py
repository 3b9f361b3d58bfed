"""Strangers on the cluster bus (issue 12): a process that knows the node
list, and so the membership hash, but not the cluster secret, must not get
a link, a log entry or a leader change."""
import time

import forge


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
