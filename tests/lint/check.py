#!/usr/bin/env python3
"""Structure and style checks, run by `make test` (as memcached runs its
style checks as tests). Each check prints what it found; exit status 1 when
any check failed.

- layers: src/ is layered (docs/ARCHITECTURE.md, "Layers"); a file may
  include files of its own layer or of a lower one, never of a higher one,
  and modules (a .c with its .h) form no include cycle.
- command names: no strcmp against a command's name outside the command
  table: what a command is lives in its row (flags, key specs, subcommands).
- style: every function at most 100 lines, no tabs, no trailing white
  space, every source file opens with a comment that says what it is.
"""
import re
import sys
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]

# Lowest first. A directory's rank is its place here; same rank = peers
# that must not include each other.
LAYERS = [
    ["lib"],
    ["net", "proto"],
    ["store"],
    ["types"],  # src/types/<type>/: one folder per value type (stream, ...)
    ["cmd"],
    ["persist"],
    ["cluster"],
    ["server"],
]
RANK = {d: i for i, ds in enumerate(LAYERS) for d in ds}

# Known violations that the structure issue (commands as data, one queue
# per loop) removes; each is "including-file -> included-file" or a cycle as
# printed. This list only shrinks.
ALLOWED = {
    "src/cluster/cluster_types.h -> src/server/config.h",
    "src/cmd/dispatch.c -> src/server/config.h",
    "src/cmd/strings.c -> src/server/config.h",
    "src/persist/persist.h -> src/server/config.h",
    "src/store/keyspace <-> src/store/table",
    "src/server/batch <-> src/server/blocking <-> src/server/client <-> src/server/cluster_client"
    " <-> src/server/conn_thread <-> src/server/host <-> src/server/pubsub <-> src/server/server",
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def src_files():
    return sorted(p for p in (ROOT / "src").glob("**/*") if p.suffix in (".c", ".h"))


def resolve(frm: Path, inc: str):
    for base in (frm.parent, ROOT / "src"):
        p = (base / inc).resolve()
        if p.exists():
            return p
    return None


def layer_of(p: Path):
    """src/<layer>/x.c -> layer; src/types/<type>/x.c -> "types" (the
    value types and their registry are one layer)."""
    rel = p.relative_to(ROOT / "src")
    return rel.parts[0] if len(rel.parts) > 1 else None


def check_layers():
    problems = []
    graph = {}
    for f in src_files():
        lf = layer_of(f)
        if lf not in RANK:
            problems.append(f"{f.relative_to(ROOT)}: directory src/{lf} is not in the layer list")
            continue
        mod_f = f.with_suffix("")
        for inc in INCLUDE.findall(f.read_text()):
            t = resolve(f, inc)
            if t is None or ROOT / "src" not in t.parents:
                continue
            lt = layer_of(t)
            key = f"{f.relative_to(ROOT)} -> {t.relative_to(ROOT)}"
            if lt in RANK and lf != lt and RANK[lt] >= RANK[lf] and key not in ALLOWED:
                kind = "a peer" if RANK[lt] == RANK[lf] else "a higher"
                problems.append(f"{key}: src/{lf} includes {kind} layer (src/{lt})")
            graph.setdefault(mod_f, set()).add(t.with_suffix(""))
    problems += find_cycles(modules_only(graph))
    return problems


def modules_only(graph):
    """The module graph with header-only modules (internal.h, curp_int.h)
    expanded into what they include: a header that only gathers others is
    not a module that can take part in a cycle."""
    real = {v for v in graph if v.with_suffix(".c").exists()}

    def reach(v, seen):
        for w in graph.get(v, ()):
            if w in seen:
                continue
            seen.add(w)
            if w not in real:
                reach(w, seen)
        return seen

    return {v: {w for w in reach(v, set()) if w in real and w != v} for v in real}


def find_cycles(graph):
    """Module include cycles (Tarjan's strongly connected components)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                names = sorted(str(c.relative_to(ROOT)) for c in comp)
                if " <-> ".join(names) not in ALLOWED:
                    out.append("include cycle: " + " <-> ".join(names))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return out


CMD_NAME_CMP = re.compile(r'\bstrn?(?:case)?cmp\s*\([^;]*\bcmd->name\b')


def check_command_names():
    problems = []
    for f in src_files():
        rel = str(f.relative_to(ROOT))
        if rel == COMMAND_TABLE:
            continue
        hits = [n for n, line in enumerate(f.read_text().split("\n"), 1)
                if CMD_NAME_CMP.search(line)]
        if len(hits) > ALLOWED_CMP.get(rel, 0):
            problems += [f"{rel}:{n}: compares a command's name: put what it decides in the "
                         "command row" for n in hits]
    return problems


# The table itself: looking names up (and checking that a subcommand row
# is named after its container) is its job.
COMMAND_TABLE = "src/cmd/command_table.c"

# How many name comparisons a file may hold: none (the structure issue
# removed the last ones; keep it empty).
ALLOWED_CMP = {}

FUNC_START = re.compile(r'^[A-Za-z_][^;=]*\)\s*\{\s*$')


def check_style():
    problems = []
    files = [p for p in src_files()] + sorted((ROOT / "client").glob("*.[ch]")) + \
        sorted((ROOT / "tools").glob("**/*.c"))
    for f in files:
        rel = f.relative_to(ROOT)
        text = f.read_text()
        if not text.startswith("/*"):
            problems.append(f"{rel}: does not open with a comment saying what it is")
        start = None
        for n, line in enumerate(text.split("\n"), 1):
            if "\t" in line:
                problems.append(f"{rel}:{n}: tab")
            if line != line.rstrip():
                problems.append(f"{rel}:{n}: trailing white space")
            if start is None and FUNC_START.match(line) and \
                    not line.startswith(("struct", "typedef", "enum", "union")):
                start = n
            elif start is not None and line == "}":
                if n - start + 1 > 100:
                    problems.append(f"{rel}:{start}: function of {n - start + 1} lines (at most 100)")
                start = None
    return problems


def main():
    failed = 0
    for name, check in (("layers", check_layers), ("command names", check_command_names),
                        ("style", check_style)):
        problems = check()
        for p in problems:
            print(f"lint {name}: {p}")
        print(f"lint {name}: {'FAILED, ' + str(len(problems)) + ' problems' if problems else 'ok'}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
