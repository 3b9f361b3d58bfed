"""Key expiry: active (background) expiry, lazy expiry on access, INFO keyspace."""
import time

from conftest import wait_for


def test_active_expiry_reclaims_untouched_keys(r):
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(b"vol:%d" % i, b"v", px=100)
    p.execute()
    r.set("keeper", "v")
    assert r.dbsize() == 101
    # DBSIZE does not touch keys, so only active expiry can bring it down
    wait_for(lambda: r.dbsize() == 1, timeout=5, msg="active expiry of 100 keys with PX 100")
    assert r.get("keeper") == b"v"


def test_active_expiry_many_keys(r):
    p = r.pipeline(transaction=False)
    for i in range(5000):
        p.set(b"many:%d" % i, b"v", px=50 + i % 100)
    p.execute()
    wait_for(lambda: r.dbsize() == 0, timeout=10, msg="active expiry of 5000 keys")


def test_expired_keys_stat(r):
    before = r.info("stats")["expired_keys"]
    p = r.pipeline(transaction=False)
    for i in range(50):
        p.set(b"st:%d" % i, b"v", px=30)
    p.execute()
    wait_for(lambda: r.dbsize() == 0, timeout=5)
    assert r.info("stats")["expired_keys"] - before == 50


def test_lazy_expiry_on_access(r):
    r.set("k", "v", px=30)
    r.set("k2", "v", px=30)
    time.sleep(0.06)  # past the expiry; then every access must see the key gone
    assert r.get("k") is None
    assert r.exists("k2") == 0
    assert r.ttl("k2") == -2
    assert r.pttl("k") == -2
    assert r.type("k") == b"none"
    assert r.strlen("k") == 0
    assert r.append("k", "x") == 1  # recreated without TTL
    assert r.ttl("k") == -1


def test_lazy_expiry_for_write_commands(r):
    r.set("n", "41", px=30)
    r.set("s", "abc", px=30)
    time.sleep(0.06)
    assert r.incr("n") == 1
    assert r.ttl("n") == -1
    assert r.setrange("s", 1, "z") == 2
    assert r.get("s") == b"\x00z"
    assert r.ttl("s") == -1


def test_expire_then_persist_survives(r):
    r.set("k", "v", px=200)
    assert r.persist("k") is True
    time.sleep(0.3)
    assert r.get("k") == b"v"


def test_info_keyspace_shows_expires(r):
    assert "db0" not in r.info("keyspace")
    r.mset({"a": 1, "b": 2, "c": 3})
    r.expire("a", 1000)
    r.expire("b", 2000)
    ks = r.info("keyspace")["db0"]
    assert ks["keys"] == 3
    assert ks["expires"] == 2
    assert "avg_ttl" in ks
    r.persist("a")
    wait_for(lambda: r.info("keyspace")["db0"]["expires"] == 1, timeout=2)
    r.flushall()
    assert "db0" not in r.info("keyspace")


def test_info_keyspace_after_active_expiry(r):
    r.set("live", 1)
    r.set("dead", 1, px=50)
    assert r.info("keyspace")["db0"]["expires"] == 1
    wait_for(lambda: r.info("keyspace")["db0"] == {**r.info("keyspace")["db0"], "keys": 1, "expires": 0},
             timeout=5)
