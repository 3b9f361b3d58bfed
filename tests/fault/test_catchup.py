"""A follower that needs entries the leader no longer holds in memory
(docs/CONSISTENCY.md, "Limits": the leader sends them from its AOF).

A follower is killed, the others take more writes than cluster-log-max-memory
keeps in memory, so the leader trims entries the dead follower lacks; the
follower comes back and must get every one of them from the leader's AOF:
its keyspace ends up holding every write, and the leader says it caught the
follower up from the AOF. The AOF reader finds entries through an index of
their AOF positions: built as entries are appended, and (second test) from
the AOF at start-up, when the other two nodes restart before the follower
comes back.
"""
import pytest
import time

import redis

VALUE = "v" * 2000
WRITES = 1500       # ~3 MB of entries: well past the 1 MB log cap


def _wait(cond, timeout, what, cluster):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s; INFO: {cluster.infos()}\n"
                                 + cluster.all_logs(3000))
        time.sleep(0.05)


@pytest.mark.parametrize("restart_others", [False, True], ids=["appended", "loaded"])
def test_follower_catches_up_from_the_aof(make_cluster, restart_others):
    c = make_cluster(3, extra_args=["--cluster-log-max-memory", "1mb", "--loglevel", "verbose"])
    leader = c.wait_leader()
    lag = c.followers(leader)[0]
    c.kill9(lag)
    r = leader.client(socket_timeout=10)
    pipe = r.pipeline(transaction=False)
    for i in range(WRITES):
        pipe.set(f"k{i}", f"{i}:{VALUE}")
        if i % 100 == 99:
            assert all(x is True for x in pipe.execute())
    pipe.execute()
    if restart_others:
        # both others restart: the leader's log, and its AOF index, come from its AOF
        others = [nd for nd in c.nodes.values() if nd is not lag]
        c.stop_all(kill=False)
        c.start_some(others)
        leader = c.wait_leader(timeout=20, among=[nd.id for nd in others])
        r = leader.client(socket_timeout=10)
        assert r.get(f"k{WRITES - 1}") == f"{WRITES - 1}:{VALUE}".encode()
    # the leader trims what the dead follower lacks once its log is over the cap
    _wait(lambda: int((leader.info() or {}).get("cluster_log_bytes", 1 << 30)) < (1 << 20), 15,
          "the leader did not trim its in-memory log", c)
    commit = int(leader.info()["cluster_commit_index"])
    c.restart(lag)

    def caught_up():
        inf = lag.info()
        return inf is not None and int(inf["cluster_applied_index"]) >= commit
    _wait(caught_up, 30, f"node {lag.id} did not catch up to index {commit}", c)
    w = lag.client()
    w.execute_command("PIER.CONSISTENCY", "WEAK")
    assert w.dbsize() >= WRITES
    for i in (0, 1, WRITES // 2, WRITES - 1):
        assert w.get(f"k{i}") == f"{i}:{VALUE}".encode(), f"k{i} on node {lag.id}"
    assert "catching up from the AOF" in leader.log_text(), leader.logs()
    try:
        assert r.set("after", "1") is True
    except redis.RedisError as e:
        raise AssertionError(f"the cluster stopped serving after the catch-up: {e!r}")
