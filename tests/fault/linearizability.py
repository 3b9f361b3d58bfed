"""Linearizability checker for key/value histories (register per key).

A history is a list of operations. Each operation (`Op`, or a dict with the
same field names) has:

  client    any hashable: who issued it (only used in explanations)
  key       the key it touched
  op        "set" (value = the value written), "get" (value = the value
            observed, None when the key was absent), "incr" (value = the
            integer result), "del" (value ignored; the key becomes absent)
  invoke    time the client sent it (time.monotonic())
  complete  time the reply arrived; None or "info" when the outcome is
            unknown (timeout, connection error): the op may or may not have
            taken effect, and if it did, its effect happened at some time
            after `invoke` (Knossos' "info" ops). `status="info"` says the
            same. `status="fail"` is a definite failure (the op had no
            effect): it is dropped.

The check is P-compositional (as in Porcupine): the history is split by key
and each key is checked alone with the Wing-Gong-Lowe search (with Lowe's
memoization of (set of linearized ops, model state)) against a register
whose initial value is None.

Info ops are given an infinite completion time, so they may be linearized
anywhere after their invocation, including "after everything" (which is the
same as never having happened, as their replies are unknown). Info gets are
dropped (they constrain nothing). An info set whose value no completed get
ever observed is dropped too: with unique or non-unique values alike, a set
that no read observes can always be moved to the end of any linearization
without changing what any read saw, so dropping it loses no linearization
and keeps the search from trying 2^n subsets of pending info writes.
An info set whose value is unique among the key's sets and was observed by a
completed get took effect before the first such get completed: it gets that
completion time (its window is then bounded, which keeps the search fast).

`check(history)` returns a `Result`: `ok` True/False, or None when the
search gave up (time budget); on failure `key`, `message` (a readable
explanation), `ops` (the ops that could not be linearized at the deepest
point the search reached) and `prefix` (the last ops of the longest
linearization found, with the register state after them).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Hashable, Iterable, List, Optional

INF = math.inf


@dataclass
class Op:
    client: Hashable
    key: Any
    op: str                      # "set" | "get" | "incr" | "del"
    value: Any = None
    invoke: float = 0.0
    complete: Any = None         # float, or None / "info" when unknown
    status: str = ""             # "", "ok", "info", "fail"

    @property
    def is_info(self) -> bool:
        if self.status == "info":
            return True
        if self.status == "fail":
            return False
        return self.complete is None or self.complete == "info"

    def __str__(self) -> str:
        end = "info" if self.is_info else f"{self.complete:.6f}"
        if self.op == "get":
            what = f"get -> {self.value!r}"
        elif self.op == "incr":
            what = f"incr -> {self.value!r}"
        elif self.op == "del":
            what = "del"
        else:
            what = f"set {self.value!r}"
        return f"[client {self.client}] {self.key!r}: {what} ({self.invoke:.6f} .. {end})"


def as_op(o) -> Op:
    if isinstance(o, Op):
        return o
    d = dict(o)
    return Op(client=d.get("client"), key=d.get("key"), op=d.get("op") or d.get("f"),
              value=d.get("value"), invoke=d.get("invoke", d.get("call", 0.0)),
              complete=d.get("complete", d.get("ret")), status=d.get("status", d.get("type", "")) or "")


@dataclass
class Result:
    ok: Optional[bool]
    key: Any = None
    message: str = ""
    ops: List[Op] = field(default_factory=list)
    prefix: List[Op] = field(default_factory=list)
    keys_checked: int = 0
    ops_checked: int = 0
    seconds: float = 0.0

    def __bool__(self):
        return self.ok is True

    def __str__(self):
        if self.ok:
            return f"linearizable ({self.keys_checked} keys, {self.ops_checked} ops, {self.seconds:.2f}s)"
        return self.message


def _norm(v):
    """Values compare as text: b"5", "5" and 5 are the same register value."""
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "surrogateescape")
    return str(v)


def _step(state, op: Op):
    """Register model. Returns (ok, new_state)."""
    kind = op.op
    if kind == "set":
        return True, _norm(op.value)
    if kind == "get":
        return state == _norm(op.value), state
    if kind == "del":
        return True, None
    if kind == "incr":
        try:
            cur = 0 if state is None else int(state)
        except ValueError:
            return False, state  # INCR on a non-integer fails: it cannot have been linearized here
        nxt = cur + 1
        if op.is_info:
            return True, str(nxt)
        try:
            return int(op.value) == nxt, str(nxt)
        except (TypeError, ValueError):
            return False, state
    raise ValueError(f"unknown op {kind!r}")


class _Entry:
    __slots__ = ("is_call", "op", "id", "time", "match", "prev", "next")

    def __init__(self, is_call, op, oid, t):
        self.is_call, self.op, self.id, self.time = is_call, op, oid, t
        self.match = self.prev = self.next = None


def _prepare(ops: List[Op]) -> List[Op]:
    """Drop what constrains nothing: failed ops, info gets, unobserved info sets."""
    kept = [o for o in ops if o.status != "fail"]
    kept = [o for o in kept if not (o.op == "get" and o.is_info)]
    if not any(o.op == "incr" for o in kept):
        observed = {_norm(o.value) for o in kept if o.op == "get"}
        kept = [o for o in kept if not (o.op == "set" and o.is_info and _norm(o.value) not in observed)]
        # An info set whose value no other set writes and some read observed
        # took effect before the first such read completed: bound it there.
        nsets = {}
        for o in kept:
            if o.op == "set":
                nsets[_norm(o.value)] = nsets.get(_norm(o.value), 0) + 1
        first_seen = {}
        for o in kept:
            if o.op == "get" and not o.is_info:
                v = _norm(o.value)
                first_seen[v] = min(first_seen.get(v, INF), float(o.complete))
        out = []
        for o in kept:
            if o.op == "set" and o.is_info and nsets[_norm(o.value)] == 1:
                t = first_seen.get(_norm(o.value), INF)
                if t < INF:
                    o = replace(o, complete=max(t, float(o.invoke)), status="ok",
                                client=f"{o.client} (info; bounded by the first read of its value)")
            out.append(o)
        kept = out
    return kept


def check_key(key, ops: List[Op], budget_s: float = 60.0) -> Result:
    """Wing-Gong-Lowe search with memoization for one key's history."""
    t0 = time.monotonic()
    ops = _prepare(ops)
    n = len(ops)
    if n == 0:
        return Result(True, keys_checked=1)
    events = []
    for i, o in enumerate(ops):
        ret = INF if o.is_info else float(o.complete)
        if ret < o.invoke:
            raise ValueError(f"op completes before it is invoked: {o}")
        events.append((float(o.invoke), 0, i))   # calls sort before returns at equal times
        events.append((ret, 1, i))
    events.sort()
    head = _Entry(False, None, -1, -INF)
    prev = head
    calls = {}
    for t, kind, i in events:
        e = _Entry(kind == 0, ops[i], i, t)
        if kind == 0:
            calls[i] = e
        else:
            e.match = calls[i]
            calls[i].match = e
        prev.next = e
        e.prev = prev
        prev = e

    def lift(e):
        e.prev.next = e.next
        if e.next is not None:
            e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next is not None:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next is not None:
            m.next.prev = m
        e.prev.next = e
        if e.next is not None:
            e.next.prev = e

    state = None
    linearized = 0
    cache = set()
    stack = []                 # (call entry, state before it)
    best_depth = -1
    best = None
    steps = 0
    entry = head.next
    while head.next is not None:
        steps += 1
        if (steps & 0xFFF) == 0 and time.monotonic() - t0 > budget_s:
            return Result(None, key=key, keys_checked=1, ops_checked=n, seconds=time.monotonic() - t0,
                          message=f"key {key!r}: search gave up after {budget_s:.0f}s "
                                  f"({steps} steps, {len(cache)} cached states, {n} ops): result unknown")
        if entry.is_call:
            ok, new_state = _step(state, entry.op)
            if ok:
                new_lin = linearized | (1 << entry.id)
                sig = (new_lin, new_state)
                if sig not in cache:
                    cache.add(sig)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_lin
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # A return: the op it belongs to could not be linearized before it.
            if len(stack) > best_depth:
                best_depth = len(stack)
                pending = []
                e = head.next
                while e is not None and e is not entry:
                    if e.is_call:
                        pending.append(e.op)
                    e = e.next
                best = ([s[0].op for s in stack], state, entry.op, pending)
            # Backtrack. A get linearized when it matched the state is never
            # worth moving: every completion that puts it later can put it at
            # that point instead (it changes nothing, and all ops that must
            # precede it are already linearized), so when it failed the state
            # before it fails too: keep popping.
            while stack:
                entry, state = stack.pop()
                linearized &= ~(1 << entry.id)
                unlift(entry)
                if entry.op.op != "get":
                    break
            else:
                break
            entry = entry.next
    dt = time.monotonic() - t0
    if head.next is None:
        return Result(True, keys_checked=1, ops_checked=n, seconds=dt)
    lin_ops, st, blocked, pending = best
    tail = lin_ops[-8:]
    lines = [f"key {key!r} is not linearizable ({n} ops checked).",
             f"Longest linearization found: {len(lin_ops)} ops; its last {len(tail)}:"]
    lines += [f"    {o}" for o in tail]
    lines.append(f"  register value then: {st!r}")
    lines.append(f"  op that had to take effect next (it completed before anything else could): {blocked}")
    lines.append("  candidates (invoked before that completion, none fits the register value):")
    for o in pending[:12]:
        lines.append(f"    {o}")
    if len(pending) > 12:
        lines.append(f"    ... {len(pending) - 12} more")
    return Result(False, key=key, message="\n".join(lines), ops=[blocked] + [p for p in pending if p is not blocked],
                  prefix=tail, keys_checked=1, ops_checked=n, seconds=dt)


def check(history: Iterable, budget_s: float = 60.0) -> Result:
    """Check a whole history, key by key. Returns the first failing key's Result
    (a gave-up key makes the result ok=None unless another key failed)."""
    t0 = time.monotonic()
    by_key = {}
    for o in history:
        o = as_op(o)
        by_key.setdefault(o.key, []).append(o)
    unknown = None
    total = 0
    for key in sorted(by_key, key=repr):
        r = check_key(key, by_key[key], budget_s=budget_s)
        total += r.ops_checked
        if r.ok is False:
            r.keys_checked = len(by_key)
            r.seconds = time.monotonic() - t0
            return r
        if r.ok is None and unknown is None:
            unknown = r
    if unknown is not None:
        unknown.seconds = time.monotonic() - t0
        return unknown
    return Result(True, keys_checked=len(by_key), ops_checked=total, seconds=time.monotonic() - t0)
