"""maxmemory, eviction policies, used_memory accuracy and bounded RSS.

Eviction tests run against the server under test (ASan build by default,
or redis-server with PIER_TEST_TARGET=redis). The allocator-accuracy and
RSS tests need the release build: the sanitizer allocator replaces malloc
(glibc's mallinfo2 then knows nothing) and its quarantine inflates RSS.
They use PIER_RELEASE_SERVER, else build/pier-server, and are skipped with
the reason when neither exists (`make build/pier-server`).
"""
import os
import random
import time
from pathlib import Path

import pytest
import redis

from conftest import IS_REDIS, REPO, Server, pier_only, wait_for

VALUE = b"v" * 1000
OOM = b"OOM command not allowed when used memory > 'maxmemory'."
RELEASE_BIN = os.environ.get("PIER_RELEASE_SERVER", str(REPO / "build" / "pier-server"))


def fill(r, prefix, n, ttl_s=None, value=VALUE, start=0):
    """SET prefix:i for i in [start, start+n) in pipelined batches."""
    for base in range(start, start + n, 500):
        p = r.pipeline(transaction=False)
        for i in range(base, min(base + 500, start + n)):
            if ttl_s is None:
                p.set(f"{prefix}:{i}", value)
            else:
                p.set(f"{prefix}:{i}", value, ex=ttl_s(i) if callable(ttl_s) else ttl_s)
        p.execute()


def present(r, keys):
    p = r.pipeline(transaction=False)
    for k in keys:
        p.exists(k)
    return [bool(x) for x in p.execute()]


def mem_server(start_server, maxmemory, policy, *extra):
    return start_server("--maxmemory", maxmemory, "--maxmemory-policy", policy, *extra)


def used_for_limit(r):
    """The figure the limit is enforced against (Redis: used_memory)."""
    info = r.info("memory")
    return info.get("used_memory_estimate", info["used_memory"])


def assert_within_limit(r, maxmemory_bytes):
    # One write may overshoot by its own size; a few KB of slack.
    assert used_for_limit(r) <= maxmemory_bytes + 64 * 1024


def test_info_memory_fields(start_server):
    s = mem_server(start_server, "3mb", "allkeys-lru")
    r = s.client()
    info = r.info("memory")
    assert info["maxmemory"] == 3 * 1024 * 1024
    assert info["maxmemory_human"] == "3.00M"
    assert info["maxmemory_policy"] == "allkeys-lru"
    assert "evicted_keys" in r.info("stats")
    assert r.config_get("maxmemory") == {"maxmemory": "3145728"}
    r.config_set("maxmemory", "2gb")
    assert r.info("memory")["maxmemory"] == 2 * 1024 ** 3
    r.config_set("maxmemory-policy", "volatile-ttl")
    assert r.info("memory")["maxmemory_policy"] == "volatile-ttl"
    with pytest.raises(redis.ResponseError, match="must be one of the following: volatile-lru, "
                       "volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, "
                       "allkeys-random, noeviction"):
        r.config_set("maxmemory-policy", "sometimes")
    assert r.config_get("maxmemory-samples") == {"maxmemory-samples": "5"}
    assert r.config_get("lfu-log-factor") == {"lfu-log-factor": "10"}
    assert r.config_get("lfu-decay-time") == {"lfu-decay-time": "1"}


def test_noeviction_oom_error_reads_and_del_work(start_server):
    s = mem_server(start_server, "2mb", "noeviction")
    r = s.client()
    raw = s.raw()
    got_oom = False
    for i in range(20000):
        reply = raw.cmd("SET", f"k:{i}", VALUE)
        if reply != b"+OK\r\n":
            assert reply == b"-" + OOM + b"\r\n"
            got_oom = True
            break
    assert got_oom, "never refused a write over maxmemory"
    assert r.info("stats")["evicted_keys"] == 0
    # Reads and DEL keep working; DEL frees memory so writes work again.
    assert raw.cmd("GET", "k:0") == b"$1000\r\n" + VALUE + b"\r\n"
    assert raw.cmd("APPEND", "k:0", "x").startswith(b"-OOM")
    n = r.dbsize()
    assert raw.cmd("DEL", *[f"k:{i}" for i in range(n // 2)]) == b":%d\r\n" % (n // 2)
    assert raw.cmd("SET", "again", "1") == b"+OK\r\n"


@pytest.mark.parametrize("policy", ["allkeys-random", "allkeys-lru", "allkeys-lfu"])
def test_allkeys_policies_evict_and_stay_under_limit(start_server, policy):
    s = mem_server(start_server, "3mb", policy)
    r = s.client()
    fill(r, "k", 9000)  # ~9 MB: three times the limit
    assert 0 < r.dbsize() < 9000
    assert r.info("stats")["evicted_keys"] > 0
    assert_within_limit(r, 3 * 1024 * 1024)
    assert r.get(f"k:{8999}") == VALUE  # the newest key was just written


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-lfu", "volatile-random",
                                    "volatile-ttl"])
def test_volatile_policies_only_evict_keys_with_ttl(start_server, policy):
    s = mem_server(start_server, "4mb", policy)
    r = s.client()
    fill(r, "keep", 1000)                    # ~1 MB, no TTL
    fill(r, "tmp", 8000, ttl_s=3600)         # ~8 MB with TTL
    assert all(present(r, [f"keep:{i}" for i in range(1000)]))
    assert r.info("stats")["evicted_keys"] > 0
    assert_within_limit(r, 4 * 1024 * 1024)
    # Only persistent keys left to evict: writes are refused, not evicted.
    r.execute_command("DEL", *[f"tmp:{i}" for i in range(8000)])
    with pytest.raises(redis.ResponseError) as e:
        fill(r, "more", 6000)
    assert OOM.decode() in str(e.value)
    assert all(present(r, [f"keep:{i}" for i in range(1000)]))


def test_volatile_ttl_evicts_soonest_expiry_first(start_server):
    s = mem_server(start_server, "3mb", "volatile-ttl")
    r = s.client()
    n = 6000
    ttls = list(range(1000, 1000 + n))
    random.Random(7).shuffle(ttls)  # write order independent of TTL
    fill(r, "t", n, ttl_s=lambda i: ttls[i])
    alive = present(r, [f"t:{i}" for i in range(n)])
    kept = [ttls[i] for i in range(n) if alive[i]]
    gone = [ttls[i] for i in range(n) if not alive[i]]
    assert kept and gone
    mean_kept, mean_gone = sum(kept) / len(kept), sum(gone) / len(gone)
    # Random eviction would give equal means; sampling TTL order keeps the
    # long-lived keys (margin: a third of the TTL range).
    assert mean_kept - mean_gone > n / 3, (mean_kept, mean_gone)


def test_lru_keeps_recently_read_keys(start_server):
    s = mem_server(start_server, "4mb", "allkeys-lru", "--maxmemory-samples", "10")
    r = s.client()
    fill(r, "old", 3000)  # ~3 MB, under the limit
    time.sleep(2.2)  # the LRU clock counts seconds: make the old keys idle
    hot = [f"old:{i}" for i in range(0, 3000, 5)]  # 600 keys
    p = r.pipeline(transaction=False)
    for k in hot:
        p.get(k)
    p.execute()
    fill(r, "new", 2500)  # forces ~1.5-2k evictions among the old keys
    cold = [f"old:{i}" for i in range(3000) if i % 5]
    hot_rate = sum(present(r, hot)) / len(hot)
    cold_rate = sum(present(r, cold)) / len(cold)
    assert hot_rate > 0.75 and hot_rate > cold_rate + 0.3, (hot_rate, cold_rate)


def test_lfu_keeps_frequently_read_keys(start_server):
    s = mem_server(start_server, "4mb", "allkeys-lfu", "--maxmemory-samples", "10")
    r = s.client()
    fill(r, "k", 3000)
    hot = [f"k:{i}" for i in range(0, 3000, 5)]
    for _ in range(20):
        p = r.pipeline(transaction=False)
        for k in hot:
            p.get(k)
        p.execute()
    fill(r, "new", 2500)
    cold = [f"k:{i}" for i in range(3000) if i % 5]
    hot_rate = sum(present(r, hot)) / len(hot)
    cold_rate = sum(present(r, cold)) / len(cold)
    assert hot_rate > 0.75 and hot_rate > cold_rate + 0.3, (hot_rate, cold_rate)


# ---------------------------------------------------------------------------
# release build: allocator accuracy and RSS


class ReleaseServer(Server):
    def argv(self):
        return [RELEASE_BIN, "--port", str(self.port), "--bind", "127.0.0.1"] + self.extra_args


@pytest.fixture
def release_server(tmp_path):
    if IS_REDIS:
        pytest.skip("pier release build only")
    if not (os.path.isfile(RELEASE_BIN) and os.access(RELEASE_BIN, os.X_OK)):
        pytest.skip(f"release build {RELEASE_BIN} missing: the sanitizer allocator hides "
                    f"mallinfo2 and inflates RSS (`make build/pier-server`)")
    started = []

    def _start(*args):
        s = ReleaseServer("pier", tmp_path / f"rel{len(started)}", args).start()
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


@pier_only
def test_used_memory_estimate_tracks_allocator(release_server):
    s = release_server()
    r = s.client()
    for size in (100, 1000):
        fill(r, f"s{size}", 20000, value=b"x" * size)
        # Right after loading (the calibration may be up to 1/hz old) and
        # after the cron ran: the cheap estimate within 10% of mallinfo2.
        for _ in range(2):
            info = r.info("memory")
            true, est = info["used_memory"], info["used_memory_estimate"]
            assert abs(est - true) <= 0.10 * true, (size, true, est)
            assert info["used_memory_rss"] >= true * 0.9
            time.sleep(0.3)


@pier_only
def test_rss_bounded_while_writing_3x_maxmemory(release_server):
    maxmem = 32 * 1024 * 1024
    s = release_server("--maxmemory", "32mb", "--maxmemory-policy", "allkeys-lru")
    r = s.client()
    base_kb = s.rss_kb()
    value = b"r" * 4000
    fill(r, "big", 3 * maxmem // 4000, value=value)
    rss = s.rss_kb() * 1024
    assert r.info("stats")["evicted_keys"] > 0
    assert_within_limit(r, maxmem)
    # Fixed overhead: the process at start plus 16 MB for allocator slack.
    assert rss < 2 * maxmem + base_kb * 1024 + 16 * 1024 * 1024, (rss, base_kb)
