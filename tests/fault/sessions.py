"""Checker of the session guarantees of weak (causal) operations.

Input: a history of weak SET / GET operations (the `Op` of linearizability.py,
or dicts with the same fields). Each op belongs to one session (`client`: a
connection; a client that reconnects must use a new session id, as the
server's session state is per connection) and a session's ops are sequential,
in `invoke` order. Requirements on the history:

  * every written value is unique (checked: a duplicate is reported as an
    invalid history);
  * every write to a checked key is in the history (a read of a value that no
    write in the history wrote is reported);
  * keys are not deleted and do not expire.

What the guarantees mean here. A write's causal past is everything its session
had written or read before it (and, transitively, the causal past of what it
read). The four session guarantees of the spec (read-your-writes, monotonic
reads, writes-follow-reads, monotonic writes) together require that the
store's order of writes to a key (its "version order", decided by the leader)
extends the causal order, and that a session's read of key k returns a write
at least as new, in that version order, as every write to k in the session's
causal past.

The version order itself is not observed (a weak write is acknowledged before
the leader orders it), so the checker decides it as far as it can: for each
key it builds a graph over the writes to that key with an edge w1 -> w2
("w1 is older than w2") for

  (a) causal order: w1 is in the causal past of w2. Same-session writes give
      monotonic writes; a read of w1 (or of any write whose past holds w1)
      before w2 in w2's session gives writes-follow-reads;
  (b) each read: when session s reads key k and gets the value of write w,
      every other write to k already in s's causal past must be older than w.
      Provenance decides the name: s's own write -> read-your-writes; a write
      s read itself earlier -> monotonic reads; one it only knows through the
      causal past of something it read -> writes-follow-reads / monotonic
      writes of the writing session.

A cycle in a key's graph means that no version order satisfies the
guarantees: a violation, reported with the edges of one cycle. Also reported
directly:

  * a read returning nothing (None) while the session's causal past holds a
    write to that key (read-your-writes, monotonic reads or causal, by
    provenance);
  * a read of a value no write in the history produced;
  * a read of a value whose write was invoked after the read completed.

What it cannot decide: the relative order of two concurrent writes (neither in
the other's causal past) that no read orders; whether a weak write the server
acknowledged survives a crash of the node that acknowledged it (the spec does
not promise it; convergence after healing is checked by the workload, not
here); anything about strong ops (check those with linearizability.py; the
strong order is not used to order weak writes). Reads and writes whose
outcome is unknown (info) add nothing to the reading session's knowledge; an
info write may or may not appear, and when some session reads it, it is
treated as a write with the causal past of its invocation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from linearizability import Op, _norm, as_op

RYW = "read-your-writes"
MR = "monotonic reads"
CAUSAL = "writes-follow-reads/monotonic writes (causal)"


@dataclass
class SessionResult:
    ok: bool
    violations: List[str] = field(default_factory=list)
    kinds: List[str] = field(default_factory=list)   # guarantee names of the violations
    reads: int = 0
    writes: int = 0
    sessions: int = 0

    def __bool__(self):
        return self.ok

    def __str__(self):
        if self.ok:
            return f"session guarantees hold ({self.sessions} sessions, {self.writes} writes, {self.reads} reads)"
        shown = self.violations[:10]
        more = f"\n... {len(self.violations) - 10} more" if len(self.violations) > 10 else ""
        return f"{len(self.violations)} session-guarantee violation(s):\n" + "\n".join(shown) + more


class _Write:
    __slots__ = ("op", "idx", "past")

    def __init__(self, op, idx):
        self.op, self.idx, self.past = op, idx, {}


def check(history: Iterable) -> SessionResult:
    ops = [as_op(o) for o in history]
    ops = [o for o in ops if o.status != "fail"]
    violations: List[Tuple[str, str]] = []

    # every written value is unique
    writes: Dict[Tuple[Any, Any], _Write] = {}
    for i, o in enumerate(ops):
        if o.op != "set":
            continue
        k = (o.key, _norm(o.value))
        if k in writes:
            violations.append(("invalid history", f"value {o.value!r} of key {o.key!r} written twice: "
                                                   f"{writes[k].op} and {o}"))
            continue
        writes[k] = _Write(o, i)

    sessions: Dict[Any, List[Op]] = {}
    for o in ops:
        sessions.setdefault(o.client, []).append(o)
    for s in sessions.values():
        s.sort(key=lambda o: o.invoke)

    # edges[key][w1][w2] = reason  (w1 older than w2)
    edges: Dict[Any, Dict[_Write, Dict[_Write, str]]] = {}

    def add_edge(key, w1, w2, why):
        if w1 is w2:
            return
        edges.setdefault(key, {}).setdefault(w1, {}).setdefault(w2, why)

    # A read's knowledge depends on the causal past of the write it read, which
    # depends on its own session's earlier ops: advance the sessions so that a
    # read is handled after the write it read (when a history is so broken
    # that no such order exists, the earliest-invoked waiting op goes first).
    # known: key -> {write: provenance}, provenance in {"own", "read", "causal"}
    done = set()
    n_reads = 0

    def merge(known, k2, w2, prov):
        cur = known.setdefault(k2, {})
        if w2 in cur:
            return
        for x in cur:
            if w2 in x.past.get(k2, ()):
                return      # already older than something known
        for x in [x for x in cur if x in w2.past.get(k2, ())]:
            del cur[x]
        cur[w2] = prov

    def do_op(sid, known, o):
        nonlocal n_reads
        if o.op == "set":
            w = writes.get((o.key, _norm(o.value)))
            if w is None or w.op is not o:
                return
            w.past = {k: dict(v) for k, v in known.items() if v}
            done.add(w)
            for w1 in known.get(o.key, {}):
                add_edge(o.key, w1, w, f"{w1.op} is in the causal past of {w.op} "
                                       f"({'same session' if w1.op.client == sid else 'read before it'})")
            if not o.is_info:
                known[o.key] = {w: "own"}
            return
        if o.op != "get" or o.is_info:
            return
        n_reads += 1
        v = _norm(o.value)
        mine = known.get(o.key, {})
        if v is None:
            if mine:
                w1, prov = next(iter(mine.items()))
                kind = {"own": RYW, "read": MR}.get(prov, CAUSAL)
                violations.append((kind, f"{kind}: session {sid!r} read {o.key!r} -> None at {o} "
                                         f"but its causal past holds {w1.op} ({prov})"))
            return
        w = writes.get((o.key, v))
        if w is None:
            violations.append(("unknown value", f"read of a value nobody wrote: {o}"))
            return
        if w.op.invoke > float(o.complete):
            violations.append(("future read", f"read {o} returned the value of {w.op}, "
                                              f"invoked after the read completed"))
        for w1, prov in mine.items():
            if w1.op.client == sid:
                prov = "own"
            kind = {"own": RYW, "read": MR}.get(prov, CAUSAL)
            add_edge(o.key, w1, w, f"{kind}: session {sid!r} read {o} while {w1.op} "
                                   f"was in its causal past ({prov})")
        for k2, ws in w.past.items():
            for w2 in ws:
                merge(known, k2, w2, "causal")
        known[o.key] = {w: "own" if w.op.client == sid else "read"}

    def ready(o):
        if o.op != "get" or o.is_info or o.value is None:
            return True
        w = writes.get((o.key, _norm(o.value)))
        return w is None or w in done

    state = {sid: [0, {}] for sid in sessions}
    remaining = sum(len(s) for s in sessions.values())
    while remaining:
        progress = False
        for sid, sops in sessions.items():
            st = state[sid]
            while st[0] < len(sops) and ready(sops[st[0]]):
                do_op(sid, st[1], sops[st[0]])
                st[0] += 1
                remaining -= 1
                progress = True
        if not progress:
            sid = min((s for s in sessions if state[s][0] < len(sessions[s])),
                      key=lambda s: sessions[s][state[s][0]].invoke)
            st = state[sid]
            do_op(sid, st[1], sessions[sid][st[0]])
            st[0] += 1
            remaining -= 1

    for key, g in edges.items():
        cyc = _shortest_cycle(g, _find_cycle(g))
        if cyc:
            kinds = {why.split(":")[0] for _, _, why in cyc if why.split(":")[0] in (RYW, MR, CAUSAL)}
            kind = RYW if RYW in kinds else MR if MR in kinds else CAUSAL
            lines = [f"{kind}: no version order of key {key!r} satisfies the guarantees; cycle:"]
            i = 0
            while i < len(cyc):
                w1, w2, why = cyc[i]
                j = i
                # a run of one session's successive writes: one line
                while (j + 1 < len(cyc) and why.endswith("(same session)")
                       and cyc[j + 1][2].endswith("(same session)") and cyc[j + 1][0].op.client == w1.op.client):
                    j += 1
                if j > i:
                    lines.append(f"    {w1.op.value!r} older than {cyc[j][1].op.value!r}: {j - i + 2} successive "
                                 f"writes of session {w1.op.client!r}, from {w1.op} to {cyc[j][1].op}")
                else:
                    lines.append(f"    {w1.op.value!r} older than {w2.op.value!r}: {why}")
                i = j + 1
            violations.append((kind, "\n".join(lines)))

    return SessionResult(ok=not violations, violations=[v for _, v in violations],
                         kinds=[k for k, _ in violations], reads=n_reads, writes=len(writes),
                         sessions=len(sessions))


def _shortest_cycle(g, cyc):
    """A shortest cycle through one of the edges of cyc (BFS back from each edge's head)."""
    if not cyc:
        return cyc
    best = cyc
    for a, b, why in cyc:
        prev = {b: None}
        queue = [b]
        for node in queue:
            if node is a:
                break
            for nxt in g.get(node, {}):
                if nxt not in prev:
                    prev[nxt] = node
                    queue.append(nxt)
        if a not in prev:
            continue
        path = [a]
        while path[-1] is not b:
            path.append(prev[path[-1]])
        path.reverse()                      # b ... a
        edges = [(a, b, why)] + [(x, y, g[x][y]) for x, y in zip(path, path[1:])]
        if len(edges) < len(best):
            best = edges
    return best


def _find_cycle(g) -> Optional[List[Tuple[Any, Any, str]]]:
    """One cycle of the directed graph g (node -> {node: reason}) as a list of edges, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {}
    parent = {}
    for root in list(g):
        if color.get(root, WHITE) != WHITE:
            continue
        stack = [(root, iter(g.get(root, {})))]
        color[root] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = BLACK
                stack.pop()
                continue
            c = color.get(nxt, WHITE)
            if c == WHITE:
                color[nxt] = GREY
                parent[nxt] = node
                stack.append((nxt, iter(g.get(nxt, {}))))
            elif c == GREY:
                # cycle: nxt -> ... -> node -> nxt
                path = [node]
                while path[-1] is not nxt:
                    path.append(parent[path[-1]])
                path.reverse()
                cyc = []
                for a, b in zip(path, path[1:] + [nxt]):
                    cyc.append((a, b, g[a][b]))
                return cyc
    return None
