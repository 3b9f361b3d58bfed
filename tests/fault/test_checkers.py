"""Unit tests of the checkers (no server needed): each checker passes known-good
histories and must FAIL known-bad ones."""
import random
import time

import pytest

import linearizability as lin
import sessions as ses
from linearizability import Op

INFO = None


def S(c, k, v, a, b, **kw):
    return Op(c, k, "set", v, a, b, **kw)


def G(c, k, v, a, b, **kw):
    return Op(c, k, "get", v, a, b, **kw)


def I(c, k, v, a, b, **kw):
    return Op(c, k, "incr", v, a, b, **kw)


# ---------------------------------------------------------------------------
# linearizability: hand-made histories

def test_empty_and_sequential_ok():
    assert lin.check([]).ok
    h = [S(1, "x", "a", 0, 1), G(2, "x", "a", 2, 3), S(1, "x", "b", 4, 5), G(2, "x", "b", 6, 7)]
    r = lin.check(h)
    assert r.ok, r


def test_initial_value_is_none():
    assert lin.check([G(1, "x", None, 0, 1), S(1, "x", "a", 2, 3)]).ok
    assert not lin.check([G(1, "x", "a", 0, 1)]).ok  # value out of thin air


def test_concurrent_read_may_see_either():
    for seen in ("a", "b"):
        h = [S(1, "x", "a", 0, 1), S(2, "x", "b", 2, 6), G(3, "x", seen, 3, 5)]
        assert lin.check(h).ok, seen


def test_stale_read_after_completed_write_fails():
    h = [S(1, "x", "a", 0, 1), S(1, "x", "b", 2, 3), G(2, "x", "a", 4, 5)]
    r = lin.check(h)
    assert r.ok is False
    assert r.key == "x"
    assert any(o.op == "get" and o.value == "a" for o in r.ops), r.message
    assert "not linearizable" in r.message


def test_lost_acknowledged_write_fails():
    # the write of b was acknowledged; the final read (after healing) sees a
    h = [S(1, "x", "a", 0, 1), S(2, "x", "b", 2, 3), G("final", "x", "a", 10, 11)]
    assert lin.check(h).ok is False
    # ... or nothing at all
    h = [S(2, "x", "b", 2, 3), G("final", "x", None, 10, 11)]
    assert lin.check(h).ok is False


def test_read_going_back_between_clients_fails():
    # b replaced a; one reader saw b, a later reader (invoked after) sees a again
    h = [S(1, "x", "a", 0, 1), S(2, "x", "b", 2, 10), G(3, "x", "b", 3, 4), G(4, "x", "a", 5, 6)]
    assert lin.check(h).ok is False


def test_info_write_may_take_effect_or_not():
    base = [S(1, "x", "a", 0, 1), S(2, "x", "b", 2, INFO)]
    assert lin.check(base + [G(3, "x", "b", 5, 6)]).ok          # took effect
    assert lin.check(base + [G(3, "x", "a", 5, 6)]).ok          # did not (yet)
    # took effect long after its invocation (late): a, then b
    assert lin.check(base + [G(3, "x", "a", 5, 6), G(3, "x", "b", 50, 51)]).ok
    # the "info" spelling of an unknown completion works too
    h = [S(1, "x", "a", 0, 1), S(2, "x", "b", 2, "info"), G(3, "x", "b", 5, 6)]
    assert lin.check(h).ok
    h = [S(1, "x", "a", 0, 1), Op(2, "x", "set", "b", 2, 3, status="info"), G(3, "x", "b", 5, 6)]
    assert lin.check(h).ok


def test_info_write_cannot_appear_then_vanish():
    h = [S(1, "x", "a", 0, 1), S(2, "x", "b", 2, INFO), G(3, "x", "b", 5, 6), G(3, "x", "a", 7, 8)]
    r = lin.check(h)
    assert r.ok is False, r


def test_info_write_cannot_take_effect_before_invocation():
    h = [S(1, "x", "a", 0, 1), G(3, "x", "b", 2, 3), S(2, "x", "b", 5, INFO)]
    assert lin.check(h).ok is False


def test_failed_op_is_ignored_info_get_ignored():
    h = [S(1, "x", "a", 0, 1), Op(2, "x", "set", "b", 2, 3, status="fail"), G(3, "x", "a", 4, 5),
         G(4, "x", "zzz", 4, INFO)]
    assert lin.check(h).ok


def test_incr():
    h = [I(1, "c", 1, 0, 1), I(2, "c", 2, 2, 3), G(3, "c", "2", 4, 5)]
    assert lin.check(h).ok
    assert lin.check([I(1, "c", 1, 0, 1), I(2, "c", 1, 2, 3)]).ok is False   # lost increment
    h = [I(1, "c", 1, 0, 1), I(2, "c", INFO, 2, INFO), G(3, "c", "2", 4, 5)]
    assert lin.check(h).ok                                                   # info incr happened
    h = [I(1, "c", 1, 0, 1), I(2, "c", INFO, 2, INFO), G(3, "c", "1", 4, 5)]
    assert lin.check(h).ok                                                   # ... or not yet
    h = [I(1, "c", 1, 0, 1), G(3, "c", "3", 4, 5)]
    assert lin.check(h).ok is False


def test_bytes_and_str_values_compare_equal():
    assert lin.check([S(1, "x", b"a", 0, 1), G(2, "x", "a", 2, 3)]).ok


def test_failure_is_reported_on_the_right_key():
    h = [S(1, "x", "a", 0, 1), G(2, "x", "a", 2, 3),
         S(1, "y", "a", 0, 1), S(1, "y", "b", 2, 3), G(2, "y", "a", 4, 5)]
    r = lin.check(h)
    assert r.ok is False and r.key == "y"


def test_dict_ops_accepted():
    h = [dict(client=1, key="x", op="set", value="a", invoke=0, complete=1),
         dict(client=2, key="x", op="get", value="a", invoke=2, complete=3)]
    assert lin.check(h).ok


# ---------------------------------------------------------------------------
# linearizability: generated histories (a real atomic register, random latencies)

def gen_history(seed, clients=5, ops_per_client=600, keys=("k0",), p_info=0.03, p_get=0.5):
    """Concurrent clients on atomic registers: each op takes effect at a random
    point inside its [invoke, complete] window; an info op takes effect (at a
    point after its invoke, maybe after everything) or not, at random."""
    rnd = random.Random(seed)
    pending = []
    counter = 0
    for c in range(clients):
        t = rnd.random()
        for _ in range(ops_per_client):
            k = rnd.choice(keys)
            dur = rnd.expovariate(1 / 0.003) + 0.0001
            inv, comp = t, t + dur
            point = rnd.uniform(inv, comp)
            info = rnd.random() < p_info
            if rnd.random() < p_get:
                op = Op(c, k, "get", None, inv, None if info else comp)
            else:
                counter += 1
                op = Op(c, k, "set", f"v{counter}", inv, None if info else comp)
            if info:
                if rnd.random() < 0.5:
                    point = None          # never happened
                else:
                    point = inv + rnd.expovariate(1 / 0.02)
            pending.append((point, op))
            t = comp + rnd.expovariate(1 / 0.001)
    regs = {}
    for point, op in sorted((p for p in pending if p[0] is not None), key=lambda p: p[0]):
        if op.op == "set":
            regs[op.key] = op.value
        else:
            op.value = regs.get(op.key)
    return [op for _, op in pending]


@pytest.mark.parametrize("seed", range(4))
def test_generated_linearizable_histories_pass_fast(seed):
    h = gen_history(seed, clients=5, ops_per_client=600)      # 3000 ops on one key
    t0 = time.monotonic()
    r = lin.check(h, budget_s=30)
    dt = time.monotonic() - t0
    assert r.ok is True, r.message
    assert dt < 10, f"checker took {dt:.1f}s for {len(h)} ops"


def test_generated_multi_key():
    h = gen_history(7, clients=8, ops_per_client=500, keys=("a", "b", "c", "d"))
    r = lin.check(h)
    assert r.ok is True, r.message
    assert r.keys_checked == 4


@pytest.mark.parametrize("seed", range(4))
def test_generated_history_with_one_stale_read_fails(seed):
    """Make one completed read return the value the register held just before
    the latest write that completed before the read was invoked: stale."""
    h = gen_history(100 + seed, clients=4, ops_per_client=300, p_info=0.0)
    sets = sorted((o for o in h if o.op == "set"), key=lambda o: o.complete)
    rnd = random.Random(seed)
    reads = [o for o in h if o.op == "get" and o.complete is not None]
    rnd.shuffle(reads)
    for rd in reads:
        before = [s for s in sets if s.complete < rd.invoke]
        if len(before) < 2:
            continue
        last = before[-1]
        # no set concurrent with the read or between last and the read
        if any(s.invoke < rd.complete and s.complete > last.complete for s in sets if s is not last):
            continue
        older = before[-2]
        if older.value == rd.value or older.complete > last.invoke:
            continue
        rd.value = older.value
        break
    else:
        pytest.skip("no suitable read")
    r = lin.check(h, budget_s=30)
    assert r.ok is False, "stale read not detected"


# ---------------------------------------------------------------------------
# session guarantees

def test_sessions_good():
    h = [S("A", "x", "A:1", 0, 1), G("A", "x", "A:1", 2, 3),
         G("B", "x", None, 0, 1), G("B", "x", "A:1", 5, 6),
         S("B", "x", "B:1", 7, 8), G("B", "x", "B:1", 9, 10),
         G("A", "x", "B:1", 11, 12), G("A", "x", "B:1", 13, 14)]
    r = ses.check(h)
    assert r.ok, str(r)
    assert r.reads == 6 and r.writes == 2


def test_sessions_concurrent_writes_either_order_ok():
    # A and B write concurrently; C sees A's then B's, D sees B's only: fine
    h = [S("A", "x", "A:1", 0, 1), S("B", "x", "B:1", 0, 1),
         G("C", "x", "A:1", 2, 3), G("C", "x", "B:1", 4, 5), G("D", "x", "B:1", 2, 3)]
    assert ses.check(h).ok


def test_read_your_writes_violation():
    h = [S("A", "x", "A:1", 0, 1), G("A", "x", None, 2, 3)]
    r = ses.check(h)
    assert not r.ok and ses.RYW in r.kinds, str(r)
    # an older own write comes back
    h = [S("A", "x", "A:1", 0, 1), S("A", "x", "A:2", 2, 3), G("A", "x", "A:1", 4, 5)]
    r = ses.check(h)
    assert not r.ok and r.kinds == [ses.RYW], str(r)


def test_monotonic_reads_violation():
    # B's writes are ordered (monotonic writes); A reads B:2 then goes back to B:1
    h = [S("B", "x", "B:1", 0, 1), S("B", "x", "B:2", 2, 3),
         G("A", "x", "B:2", 4, 5), G("A", "x", "B:1", 6, 7)]
    r = ses.check(h)
    assert not r.ok and ses.MR in r.kinds, str(r)
    # read then nothing
    h = [S("B", "x", "B:1", 0, 1), G("A", "x", "B:1", 4, 5), G("A", "x", None, 6, 7)]
    r = ses.check(h)
    assert not r.ok and ses.MR in r.kinds, str(r)


def test_monotonic_reads_contradiction_between_sessions():
    # concurrent writes, but C and D see them in opposite orders: no version order fits
    h = [S("A", "x", "A:1", 0, 1), S("B", "x", "B:1", 0, 1),
         G("C", "x", "A:1", 2, 3), G("C", "x", "B:1", 4, 5),
         G("D", "x", "B:1", 2, 3), G("D", "x", "A:1", 4, 5)]
    r = ses.check(h)
    assert not r.ok and ses.MR in r.kinds, str(r)


def test_monotonic_writes_violation():
    # A writes x then y; B sees the y write but not the x write
    h = [S("A", "x", "A:1", 0, 1), S("A", "y", "A:2", 2, 3),
         G("B", "y", "A:2", 4, 5), G("B", "x", None, 6, 7)]
    r = ses.check(h)
    assert not r.ok and ses.CAUSAL in r.kinds, str(r)
    # same key: A:2 overwrote A:1, B reads A:1 after A:2
    h = [S("A", "x", "A:1", 0, 1), S("A", "x", "A:2", 2, 3), S("C", "x", "C:1", 0, 1),
         G("B", "x", "A:2", 4, 5), G("B", "x", "A:1", 6, 7)]
    assert not ses.check(h).ok


def test_writes_follow_reads_violation():
    # B read A's x write, then wrote y; C sees B's y write but not A's x write
    h = [S("A", "x", "A:1", 0, 1), G("B", "x", "A:1", 2, 3), S("B", "y", "B:1", 4, 5),
         G("C", "y", "B:1", 6, 7), G("C", "x", None, 8, 9)]
    r = ses.check(h)
    assert not r.ok and ses.CAUSAL in r.kinds, str(r)
    # and on one key: B read A:1 then wrote B:1 (so A:1 is older); C sees B:1 then A:1
    h = [S("A", "x", "A:1", 0, 1), G("B", "x", "A:1", 2, 3), S("B", "x", "B:1", 4, 5),
         G("C", "x", "B:1", 6, 7), G("C", "x", "A:1", 8, 9)]
    assert not ses.check(h).ok
    # the good variant: C sees A's write
    h = [S("A", "x", "A:1", 0, 1), G("B", "x", "A:1", 2, 3), S("B", "y", "B:1", 4, 5),
         G("C", "y", "B:1", 6, 7), G("C", "x", "A:1", 8, 9)]
    assert ses.check(h).ok


def test_sessions_info_write_may_or_may_not_appear():
    base = [S("A", "x", "A:1", 0, 1), S("A", "x", "A:2", 2, INFO)]
    assert ses.check(base + [G("B", "x", "A:1", 3, 4)]).ok
    assert ses.check(base + [G("B", "x", "A:1", 3, 4), G("B", "x", "A:2", 5, 6)]).ok
    assert ses.check(base + [G("B", "x", "A:2", 5, 6)]).ok
    # once seen it cannot vanish for that session
    assert not ses.check(base + [G("B", "x", "A:2", 5, 6), G("B", "x", "A:1", 7, 8)]).ok
    # an info read adds no knowledge
    assert ses.check(base + [G("B", "x", "A:2", 5, INFO), G("B", "x", "A:1", 7, 8)]).ok


def test_sessions_invalid_histories():
    r = ses.check([S("A", "x", "v", 0, 1), S("B", "x", "v", 0, 1)])
    assert not r.ok and "invalid history" in r.kinds
    r = ses.check([G("A", "x", "nobody", 0, 1)])
    assert not r.ok and "unknown value" in r.kinds
    r = ses.check([G("A", "x", "B:1", 0, 1), S("B", "x", "B:1", 5, 6)])
    assert not r.ok and "future read" in r.kinds


def test_sessions_generated_causal_history_ok_and_fast():
    """Sessions on replicas that apply one global order (each session reads
    from a prefix that only grows and includes its own writes): must pass."""
    rnd = random.Random(3)
    log = []        # global order of writes (key, value)
    hist = []
    sess = {s: {"seen": 0, "n": 0, "own": {}} for s in "ABCDEF"}
    t = 0.0
    for step in range(4000):
        s = rnd.choice("ABCDEF")
        st = sess[s]
        k = rnd.choice("xyz")
        t += 1
        if rnd.random() < 0.4:
            st["n"] += 1
            v = f"{s}:{st['n']}"
            log.append((k, v))
            st["own"][k] = len(log)            # position of own write
            st["seen"] = max(st["seen"], len(log))   # a session's writes follow what it saw
            hist.append(S(s, k, v, t, t + 0.5))
        else:
            # replica prefix: at least what the session saw, at most everything
            st["seen"] = rnd.randint(st["seen"], len(log))
            val = None
            for kk, vv in log[:st["seen"]]:
                if kk == k:
                    val = vv
            hist.append(G(s, k, val, t, t + 0.5))
    t0 = time.monotonic()
    r = ses.check(hist)
    assert r.ok, str(r)
    assert time.monotonic() - t0 < 10
    # one bad read: a session reads the initial None after it has seen writes
    bad = list(hist)
    for i in range(len(bad) - 1, 0, -1):
        o = bad[i]
        if o.op == "get" and o.value is not None:
            bad[i] = G(o.client, o.key, None, o.invoke, o.complete)
            break
    assert not ses.check(bad).ok
