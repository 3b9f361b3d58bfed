#!/usr/bin/env bash
# pier cluster vs etcd on this machine: 3 replicated nodes each, on loopback,
# the same workload through each system's own load client, in one run.
#
#   bench/compare-etcd.sh [--rounds 3] [--clients 100] [--pendings 1]
#       [--reqs 20000] [--value-size 100] [--keyspace 10000]
#       [--workloads write,mixed] [--long-reqs 1000000] [--skip-long]
#       [--skip-single] [--systems etcd,pier-always,...] [--no-build] [--keep]
#
# What runs (all at once, each on its own free ports, data in one temp dir):
#   etcd          3 members of Debian's etcd-server (3.4), gRPC client port
#                 and peer port each; etcd fsyncs its WAL before it acks a
#                 put (no option turns that off), so its like-for-like pier
#                 configuration is --appendfsync always.
#   pier always   tools/pier-cluster start 3 -- --appendfsync always
#   pier everysec tools/pier-cluster start 3 -- --appendfsync everysec
#   pier single   one pier-server, no cluster, --appendonly yes with the same
#                 two fsync policies: what replication costs (same client).
#
# Workloads (--workloads, comma-separated): write (100% puts/SETs), mixed
# (50% writes, 50% reads), read (100% reads), mixed-weak (50/50, reads weak:
# pier's WEAK consistency, etcd's serializable Range; writes stay strong on
# both). Reads are linearizable otherwise (pier STRONG, etcd's default
# Range). Keys key:000000000000..keyspace-1 uniform, prefilled on every
# system before the first round so that reads find values.
#
# Rounds alternate the systems (the order is reversed every other round);
# each figure is the median over rounds and each ratio the median of the
# per-round ratios (docs/BENCHMARKS.md, ../shared/reference/MEASURING.md).
# Server CPU per request: utime + stime of all the system's server processes
# (/proc/PID/stat) over the run, divided by the requests.
#
# The long run: --long-reqs requests (1M) vs --reqs on the pier cluster
# with appendfsync always (write workload), before and after; the ratio
# should be within 5% of 1.
#
# Load clients, and why:
#   pier: build/pier-bench cluster (RESP, closed loop, epoll), client i on
#     node i mod 3; --clients C, one thread, C x P ops in flight in all.
#   etcd: build/etcd-bench (bench/etcd-bench.c, compiled here if missing).
#     Debian has etcd-server and etcd-client 3.4.23 but not etcd's own
#     benchmark tool: tools/benchmark is in no Debian package, not even in
#     golang-etcd-server-dev (etcd's Go sources, clientv3 included, for
#     golang-go 1.19), so it cannot be built offline either. etcd-bench
#     is a C client with the same closed-loop model as pier-bench (N
#     connections, P requests in flight each, epoll, log-bucketed latency
#     histogram). It speaks gRPC over HTTP/2 (libnghttp2), etcd's native
#     protocol, not the HTTP/1.1 JSON gateway at /v3/kv/put: the gateway
#     proxies every request through an internal gRPC connection and adds
#     JSON and base64 work no real etcd client pays, so it would understate
#     etcd. Connections are spread round robin over the 3 members on both
#     systems (followers forward writes to the leader on both). Both clients
#     run one thread with one epoll loop, so each costs the shared 2 cores
#     about the same.
# Needs: etcd-server etcd-client libnghttp2-dev redis-tools (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 CLIENTS=100 PENDINGS=1 REQS=20000 VSIZE=100 KEYSPACE=10000
WORKLOADS=write,mixed LONG_REQS=1000000 SKIP_LONG=0 SKIP_SINGLE=0 KEEP=0
NO_BUILD=0 ONLY=etcd,pier-always,pier-everysec,single-always,single-everysec
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --pendings) PENDINGS=$2; shift 2 ;;
    --reqs) REQS=$2; shift 2 ;;
    --value-size) VSIZE=$2; shift 2 ;;
    --keyspace) KEYSPACE=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --long-reqs) LONG_REQS=$2; shift 2 ;;
    --skip-long) SKIP_LONG=1; shift ;;
    --skip-single) SKIP_SINGLE=1; shift ;;
    --systems) ONLY=$2; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;  # use build/pier-server and build/pier-bench as they are
    --keep) KEEP=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# The peers come from Debian: install what is missing (make bench-deps).
if ! command -v etcd >/dev/null || ! command -v redis-cli >/dev/null ||
   ! pkg-config --exists libnghttp2; then
  make --no-print-directory bench-deps
fi
for tool in etcd etcdctl redis-cli; do
  command -v "$tool" >/dev/null ||
    { echo "$tool missing: make bench-deps (etcd-server etcd-client redis-tools)" >&2; exit 1; }
done

[ "$NO_BUILD" = 1 ] || make --no-print-directory build/pier-server build/pier-bench >/dev/null
if [ ! -x build/etcd-bench ] || [ bench/etcd-bench.c -nt build/etcd-bench ] ||
   [ src/lib/histogram.c -nt build/etcd-bench ]; then
  cc -O2 -std=c17 -D_GNU_SOURCE -pthread -Wall -Wextra -Wno-unused-parameter -Isrc \
     -o build/etcd-bench bench/etcd-bench.c src/lib/histogram.c \
     $(pkg-config --libs libnghttp2) -lm
fi
PIER_CLUSTER_OK=0
build/pier-bench cluster --help >/dev/null 2>&1 && PIER_CLUSTER_OK=1

WORK=$(mktemp -d /tmp/compare-etcd.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
ETCD_PIDS=() SINGLE_PIDS=() CLUSTER_DIRS=()
cleanup() {
  set +e
  for d in "${CLUSTER_DIRS[@]+"${CLUSTER_DIRS[@]}"}"; do
    tools/pier-cluster stop --dir "$d" >/dev/null 2>&1
  done
  # etcd's graceful stop would try to hand leadership to members that are
  # stopping too (seconds); its data is thrown away, so SIGKILL.
  for pid in "${ETCD_PIDS[@]+"${ETCD_PIDS[@]}"}"; do kill -9 "$pid" 2>/dev/null; done
  for pid in "${SINGLE_PIDS[@]+"${SINGLE_PIDS[@]}"}"; do kill "$pid" 2>/dev/null; done
  for pid in "${ETCD_PIDS[@]+"${ETCD_PIDS[@]}"}" "${SINGLE_PIDS[@]+"${SINGLE_PIDS[@]}"}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ "$KEEP" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A base port B with B..B+n-1 and (B..B+n-1)+off free, searching from $1.
free_base() {
  local b=$1 n=$2 off=${3:-0} i ok
  while [ "$b" -lt 50000 ]; do
    ok=1
    for i in $(seq 0 $((n - 1))); do
      if port_busy $((b + i)) || { [ "$off" -gt 0 ] && port_busy $((b + i + off)); }; then ok=0; break; fi
    done
    [ $ok = 1 ] && { echo "$b"; return; }
    b=$((b + 20))
  done
  echo "no free ports" >&2; exit 1
}
wait_port() {
  for _ in $(seq 1 100); do port_busy "$1" && return 0; sleep 0.05; done
  echo "nothing listening on $1" >&2; exit 1
}
# Sum of utime + stime, in clock ticks, of the given pids.
cpu_ticks() {
  local t=0 pid f
  for pid in "$@"; do
    f=$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null) || continue
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
TCK=$(getconf CLK_TCK)

# ---- etcd: 3 members ------------------------------------------------------
EB=$(free_base 23790 3)
EPB=$(free_base $((EB + 10)) 3)
ETCD_EPS="" CL=""
for i in 1 2 3; do
  ETCD_EPS="$ETCD_EPS${ETCD_EPS:+,}127.0.0.1:$((EB + i - 1))"
  CL="$CL${CL:+,}e$i=http://127.0.0.1:$((EPB + i - 1))"
done
for i in 1 2 3; do
  cp=$((EB + i - 1)) pp=$((EPB + i - 1))
  setsid etcd --name "e$i" --data-dir "$WORK/etcd-$i" \
    --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "$CL" --initial-cluster-state new --initial-cluster-token compare-etcd \
    --logger zap --log-level warn \
    </dev/null >"$WORK/etcd-$i.log" 2>&1 &
  ETCD_PIDS+=($!)
  disown $!
done
ok=0
for _ in $(seq 1 150); do
  if ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" endpoint health >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ $ok = 1 ] || { echo "etcd did not become healthy; logs in $WORK (--keep)" >&2; tail -5 "$WORK"/etcd-*.log >&2; exit 1; }
ETCD_VER=$(etcd --version | sed -n 's/^etcd Version: //p')

# ---- pier: 3-node clusters and single nodes --------------------------------
declare -A NODES PIDS_OF
NODES[etcd]=$ETCD_EPS
PIDS_OF[etcd]="${ETCD_PIDS[*]}"
start_cluster() {  # name fsync
  local base dir
  base=$(free_base 27100 3 10000)
  dir=$WORK/pier-$1
  CLUSTER_DIRS+=("$dir")
  tools/pier-cluster start 3 --base-port "$base" --dir "$dir" -- \
    --appendfsync "$2" --save "" >"$WORK/$1.start" 2>&1 ||
    { cat "$WORK/$1.start" >&2; exit 1; }
  NODES[$1]="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
  PIDS_OF[$1]="$(cat "$dir"/node-*/pid | tr '\n' ' ')"
}
start_single() {  # name fsync
  local port
  port=$(free_base 27300 1)
  mkdir -p "$WORK/$1"
  build/pier-server --bind 127.0.0.1 --port "$port" --dir "$WORK/$1" --appendonly yes \
    --appendfsync "$2" --save "" --batch-port 0 >"$WORK/$1.log" 2>&1 </dev/null &
  SINGLE_PIDS+=($!)
  PIDS_OF[$1]=$!
  disown $!
  NODES[$1]="127.0.0.1:$port"
  wait_port "$port"
}
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
[ "$SKIP_SINGLE" = 1 ] && ONLY=$(echo ",$ONLY," | sed 's/,single-[a-z]*//g; s/^,//; s/,$//')
SYSTEMS=(etcd)
for f in always everysec; do
  want "pier-$f" && { start_cluster "pier-$f" "$f"; SYSTEMS+=("pier-$f"); }
done
for f in always everysec; do
  want "single-$f" && { start_single "single-$f" "$f"; SYSTEMS+=("single-$f"); }
done

# ---- prefill: every key once, before the first round ------------------------
VALUE=$(head -c "$VSIZE" /dev/zero | tr '\0' 'v')
prefill_resp() {  # first node of a pier system
  local hp=${1%%,*}
  /usr/bin/python3 - "$KEYSPACE" "$VALUE" <<'EOF' | redis-cli -h "${hp%:*}" -p "${hp#*:}" --pipe >/dev/null
import sys
n, v = int(sys.argv[1]), sys.argv[2].encode()
out = sys.stdout.buffer
for k in range(n):
    key = b"key:%012d" % k
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(v), v))
EOF
}
build/etcd-bench --endpoints "$ETCD_EPS" --clients "$CLIENTS" --keyspace "$KEYSPACE" \
  --value-size "$VSIZE" --prefill --reqs 1 -q >/dev/null
for s in "${SYSTEMS[@]}"; do [ "$s" = etcd ] || prefill_resp "${NODES[$s]}"; done

# ---- one measured run -------------------------------------------------------
wl_writes() { case "$1" in write) echo 1 ;; read) echo 0 ;; mixed|mixed-weak) echo 0.5 ;; *) echo "unknown workload $1" >&2; exit 2 ;; esac; }
wl_weak() { case "$1" in mixed-weak) echo 1 ;; *) echo 0 ;; esac; }

run_etcd() {  # workload reqs -> one JSON line on stdout
  build/etcd-bench --endpoints "${NODES[etcd]}" --clients "$CLIENTS" --pendings "$PENDINGS" \
    --reqs "$2" --writes "$(wl_writes "$1")" --weak-ratio "$(wl_weak "$1")" \
    --keyspace "$KEYSPACE" --value-size "$VSIZE" --json -q
}
# The pier side: the same workload through pier-bench cluster: CLIENTS
# sessions on one thread with CLIENTS x PENDINGS ops in flight in all (its
# --pendings counts per thread), REQS ops in all (its --reqs counts per
# thread). Strong ops are the writes/reads mix; in mixed-weak the weak ops
# are all reads (--weak-writes 0: etcd has no weak writes) and the strong
# ones all writes. A single node answers PIER.CONSISTENCY too, but strong-only
# runs there skip it (--no-consistency), so older servers work.
run_pier() {  # system workload reqs -> one JSON line on stdout
  if [ "$PIER_CLUSTER_OK" != 1 ]; then echo '{"missing":1}'; return; fi
  local w weak extra=()
  w=$(wl_writes "$2") weak=$(wl_weak "$2")
  if [ "$weak" != 0 ]; then weak=0.5 w=1; fi
  case "$1" in single-*) [ "$weak" = 0 ] && extra=(--no-consistency) ;; esac
  build/pier-bench cluster --nodes "${NODES[$1]}" --clients "$CLIENTS" --threads 1 \
    --pendings $((CLIENTS * PENDINGS)) --reqs "$3" --writes "$w" --weak-ratio "$weak" \
    --weak-writes 0 --keyspace "$KEYSPACE" --value-size "$VSIZE" --json -q \
    ${extra[@]+"${extra[@]}"}
}
measure() {  # system workload round reqs label
  local sys=$1 wl=$2 t0 t1 out
  t0=$(cpu_ticks ${PIDS_OF[$sys]})
  if [ "$sys" = etcd ]; then out=$(run_etcd "$wl" "$4" 2>"$WORK/last.err") || true
  else out=$(run_pier "$sys" "$wl" "$4" 2>"$WORK/last.err") || true; fi
  t1=$(cpu_ticks ${PIDS_OF[$sys]})
  out=$(printf '%s\n' "$out" | grep '^{' | tail -n1) || true
  if [ -z "$out" ]; then
    echo "  $sys $wl failed: $(head -c 300 "$WORK/last.err")" >&2
    out='{"failed":1}'
  fi
  printf '{"system":"%s","workload":"%s","round":%s,"label":"%s","server_cpu_s":%s,"r":%s}\n' \
    "$sys" "$wl" "$3" "$5" "$(awk -v t=$((t1 - t0)) -v h="$TCK" 'BEGIN{printf "%.3f", t/h}')" \
    "$out" >>"$RESULTS"
  printf '  %-16s %-10s %s\n' "$sys" "$wl" "$(printf '%s' "$out" | grep -o '"ops_per_sec":[0-9.]*' || echo "$out")" >&2
}

IFS=, read -r -a WLS <<<"$WORKLOADS"
for r in $(seq 1 "$ROUNDS"); do
  order=("${SYSTEMS[@]}")
  if [ $((r % 2)) = 0 ]; then
    order=(); for ((i = ${#SYSTEMS[@]} - 1; i >= 0; i--)); do order+=("${SYSTEMS[$i]}"); done
  fi
  echo "round $r/$ROUNDS" >&2
  for wl in "${WLS[@]}"; do
    for s in "${order[@]}"; do measure "$s" "$wl" "$r" "$REQS" main; done
  done
done

if [ "$SKIP_LONG" = 0 ] && want pier-always; then
  echo "long run: pier-always, write, $REQS vs $LONG_REQS requests" >&2
  measure pier-always write 1 "$REQS" long-short
  measure pier-always write 1 "$LONG_REQS" long
  measure pier-always write 2 "$REQS" long-short
fi

# ---- the table --------------------------------------------------------------
/usr/bin/python3 - "$RESULTS" "$ETCD_VER" "$CLIENTS" "$PENDINGS" "$REQS" "$VSIZE" "$KEYSPACE" "$ROUNDS" "$LONG_REQS" <<'EOF'
import json, statistics as st, sys
path, ver, clients, pend, reqs, vsize, ks, rounds, long_reqs = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]

def norm(x):
    """One run as {ops, n, p50, p99, errors, cpu}; p50/p99 are (writes, reads)
    pairs in mixed-weak, where strong = writes and weak = reads on pier."""
    r = x["r"]
    n = r.get("requests", r.get("ops", 0))
    if "ops_per_sec" not in r or not n:
        return None
    if "strong" in r:  # pier-bench cluster
        s, w = r["strong"], r["weak"]
        if not w["ops"]: p50, p99 = s["p50_us"], s["p99_us"]
        elif not s["ops"]: p50, p99 = w["p50_us"], w["p99_us"]
        else: p50, p99 = (s["p50_us"], w["p50_us"]), (s["p99_us"], w["p99_us"])
    elif x["workload"] == "mixed-weak":  # etcd-bench: puts, serializable ranges
        p50, p99 = (r["write_p50_us"], r["read_p50_us"]), (r["write_p99_us"], r["read_p99_us"])
    else:
        p50, p99 = r["p50_us"], r["p99_us"]
    return dict(ops=r["ops_per_sec"], n=n, p50=p50, p99=p99, errors=r.get("errors", 0),
                cpu=x["server_cpu_s"] * 1e6 / n)

for x in rows: x["n"] = norm(x)
def med(v):
    if not v: return None
    if isinstance(v[0], tuple): return tuple(st.median(c) for c in zip(*v))
    return st.median(v)
def fmt(v, d=0):
    if v is None: return "-"
    if isinstance(v, tuple): return " / ".join(fmt(c, d) for c in v)
    return f"{v:,.{d}f}"

CONF = {
    "etcd": ("etcd %s" % ver, "3 nodes, WAL fsync before ack"),
    "pier-always": ("pier cluster", "3 nodes, appendfsync always"),
    "pier-everysec": ("pier cluster", "3 nodes, appendfsync everysec"),
    "single-always": ("pier single node", "no replication, appendfsync always"),
    "single-everysec": ("pier single node", "no replication, appendfsync everysec"),
}
main = [x for x in rows if x["label"] == "main"]
wls = list(dict.fromkeys(x["workload"] for x in main))
syss = list(dict.fromkeys(x["system"] for x in main))
print(f"{clients} connections x {pend} in flight, one client thread, {int(reqs):,} requests per run, "
      f"{vsize}-byte values, keyspace {ks} (prefilled), {rounds} alternating rounds: medians; "
      f"ratio = median of the per-round throughput ratios. mixed-weak latencies: writes / reads.\n")
print("| system | config | workload | ops/s | p50 us | p99 us | server cpu us/req | errors | ratio vs etcd |")
print("|---|---|---|---|---|---|---|---|---|")
for wl in wls:
    by = {}
    for x in main:
        if x["workload"] == wl: by.setdefault(x["system"], {})[x["round"]] = x
    etcd = by.get("etcd", {})
    for s in syss:
        mine = by.get(s, {})
        runs = [x["n"] for x in mine.values() if x["n"]]
        name, conf = CONF.get(s, (s, ""))
        if not runs:
            why = ("pier-bench cluster not available" if any("missing" in x["r"] for x in mine.values())
                   else "failed")
            print(f"| {name} | {conf} | {wl} | {why} | | | | | |")
            continue
        ratios = [x["n"]["ops"] / etcd[rd]["n"]["ops"] for rd, x in mine.items()
                  if x["n"] and rd in etcd and etcd[rd]["n"]]
        rt = "1.00" if s == "etcd" else fmt(med(ratios), 2)
        print(f"| {name} | {conf} | {wl} | {fmt(med([r['ops'] for r in runs]))} | "
              f"{fmt(med([r['p50'] for r in runs]))} | {fmt(med([r['p99'] for r in runs]))} | "
              f"{fmt(med([r['cpu'] for r in runs]), 1)} | {sum(r['errors'] for r in runs)} | {rt} |")

# What replication costs: cluster vs single node, same fsync policy, same client.
lines = []
for wl in wls:
    for c, one in (("pier-always", "single-always"), ("pier-everysec", "single-everysec")):
        rs = []
        for rd in range(1, int(rounds) + 1):
            a = [x["n"] for x in main if (x["system"], x["workload"], x["round"]) == (c, wl, rd) and x["n"]]
            b = [x["n"] for x in main if (x["system"], x["workload"], x["round"]) == (one, wl, rd) and x["n"]]
            if a and b: rs.append(a[0]["ops"] / b[0]["ops"])
        if rs: lines.append(f"| {wl} | {c.split('-')[1]} | {med(rs):.2f} |")
if lines:
    print("\npier 3-node cluster vs one unreplicated node, same client (throughput ratio, median of rounds):\n")
    print("| workload | appendfsync | cluster / single |\n|---|---|---|")
    print("\n".join(lines))

short = [x["n"]["ops"] for x in sorted(rows, key=lambda x: x["round"]) if x["label"] == "long-short" and x["n"]]
long_ = [x["n"]["ops"] for x in rows if x["label"] == "long" and x["n"]]
if len(short) == 2 and long_:
    print(f"\nLong run (pier cluster, appendfsync always, writes), one after the other: {int(reqs):,} requests "
          f"{fmt(short[0])} ops/s, then {int(long_reqs):,} requests {fmt(long_[0])} ops/s, then {int(reqs):,} "
          f"requests {fmt(short[1])} ops/s. Long-run ratio {long_[0] / short[0]:.2f} "
          f"(goal: within 5% of 1); after/before {short[1] / short[0]:.2f}.")
elif any(x["label"] == "long" for x in rows):
    print("\nLong run: failed (see the progress lines)")
EOF
