#!/usr/bin/env bash
# Append throughput on this machine, loopback, same message and batch sizes:
#
#   ceiling      bench/tcp-ceiling run: the batch framing written with writev
#                from a prebuilt buffer, read and dropped (no copy, no CRC)
#   libpier      pier-bench log against tcp-ceiling sink: the client library
#                alone (copy into batches, crc32c, writev, ACKs)
#   pier batch   pier-bench log against pier-server's batch port (publish
#                until every batch is ACKed; and e2e: until a subscriber
#                consumed the last message)
#   pier XADD    pipelined RESP XADD to pier-server (tcp-ceiling xadd)
#   redis XADD   pipelined RESP XADD to redis-server (tcp-ceiling xadd;
#                redis-benchmark cannot send 4 KB XADD values: a custom
#                command gets the literal __data__)
#
# Then the cluster rows (issue 14; --no-cluster skips them): local clusters
# started with tools/pier-cluster, one striped publisher (pier-bench log
# --nodes, publish until every batch is ACKed, --cluster-total each):
#   a 1-node cluster; a 3-node cluster published to over 2 of its nodes
#   and over all 3 (a 2-node cluster cannot be started: pier-server wants
#   1, 3, 5 or 7 members); order levels 0 and 2; ack levels 1 and 2;
#   replication 1, 2, 3; and a run whose leader is killed with SIGKILL at
#   --kill-at seconds (the stall: the longest time without an ACK from the
#   kill on; the throughput before and after). Ratios: order level 2 / 0,
#   RF 2 / RF 1. A server that refuses (ERROR 8, or a batch port that is
#   off in cluster mode) ends the cluster rows with a note; the rows above
#   are printed all the same.
#
# Usage: bench/compare-log.sh [--size 4kb] [--total 1gb] [--conns 1]
#                             [--pipeline 16] [--xadd-conns 4] [--codec lz4]
#                             [--no-cluster] [--cluster-total 256mb]
#                             [--kill-at 1]
# Sizes take the server's units (4kb = 4096, 4k = 4000), in both tools.
# Servers run on free ports and are stopped by PID (clusters with
# tools/pier-cluster stop).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=4kb TOTAL=1gb CONNS=1 PIPELINE=16 XCONNS=4 CODEC=lz4 BATCH=2mb
CLUSTER=1 CTOTAL=256mb KILL_AT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --total) TOTAL=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    --xadd-conns) XCONNS=$2; shift 2 ;;
    --codec) CODEC=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --no-cluster) CLUSTER=0; shift ;;
    --cluster-total) CTOTAL=$2; shift 2 ;;
    --kill-at) KILL_AT=$2; shift 2 ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

make --no-print-directory deps
make --no-print-directory build/pier-server build/pier-bench build/tcp-ceiling >/dev/null
command -v redis-server >/dev/null || { echo "redis-server missing (make deps)" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
CLUSTER_DIRS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for d in "${CLUSTER_DIRS[@]+"${CLUSTER_DIRS[@]}"}"; do
    tools/pier-cluster stop --dir "$d" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {  # port: wait until something accepts there
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on $1" >&2; exit 1
}

field() {  # json-line field
  /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"
}

echo "== loopback TCP ceiling" >&2
CEIL=$(build/tcp-ceiling run -c "$CONNS" -s "$SIZE" -b "$BATCH" -t "$TOTAL" --json | field mib_per_sec)

echo "== libpier alone (tcp-ceiling sink)" >&2
SINK_PORT=$(free_port)
build/tcp-ceiling sink -p "$SINK_PORT" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
wait_port "$SINK_PORT"
LOG_OPTS=(-d "$SIZE" --total "$TOTAL" --conns "$CONNS" --codec "$CODEC" --batch "$BATCH" --json -q)
# (the sink has no RESP port to delete the topic on: --keep)
LIB=$(build/pier-bench log --nodes "127.0.0.1:$SINK_PORT" --keep "${LOG_OPTS[@]}" 2>/dev/null | field mib_per_sec)

echo "== pier-server batch port" >&2
PORT=$(free_port); BPORT=$(free_port)
mkdir -p "$WORK/pier"
(cd "$WORK/pier" && exec "$OLDPWD/build/pier-server" --port "$PORT" --batch-port "$BPORT" \
    --save "" --loglevel silent) &
PIDS+=($!)
wait_port "$BPORT"
PUB=$(build/pier-bench log --nodes "127.0.0.1:$BPORT" --resp "127.0.0.1:$PORT" "${LOG_OPTS[@]}" --topic cmp:pub 2>/dev/null | field mib_per_sec)
E2E=$(build/pier-bench log --nodes "127.0.0.1:$BPORT" --resp "127.0.0.1:$PORT" "${LOG_OPTS[@]}" --mode e2e --topic cmp:e2e 2>/dev/null | field mib_per_sec)
PXADD=$(build/tcp-ceiling xadd -p "$PORT" -c "$XCONNS" -P "$PIPELINE" -s "$SIZE" -t "$TOTAL" --json | field mib_per_sec)

echo "== redis-server XADD" >&2
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --loglevel warning >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$RPORT"
RXADD=$(build/tcp-ceiling xadd -p "$RPORT" -c "$XCONNS" -P "$PIPELINE" -s "$SIZE" -t "$TOTAL" --json | field mib_per_sec)

/usr/bin/python3 - "$CEIL" "$LIB" "$PUB" "$E2E" "$PXADD" "$RXADD" "$SIZE" "$TOTAL" "$CONNS" "$CODEC" <<'PY'
import sys
ceil, lib, pub, e2e, pxadd, rxadd = map(float, sys.argv[1:7])
size, total, conns, codec = sys.argv[7:11]
print(f"append throughput, {size} messages, {total} total, {conns} batch connection(s), codec {codec}")
print(f"{'path':<34}{'MiB/s':>10}{'GB/s':>8}{'/ceiling':>10}{'/redis':>9}")
for name, v in [("loopback TCP ceiling", ceil), ("libpier -> sink (client alone)", lib),
                ("pier batch publish (acked)", pub), ("pier batch end-to-end", e2e),
                ("pier RESP XADD pipelined", pxadd), ("redis RESP XADD pipelined", rxadd)]:
    print(f"{name:<34}{v:>10.1f}{v*1048576/1e9:>8.2f}{v/ceil:>10.2f}{v/rxadd:>9.2f}")
PY

# ---- cluster rows -----------------------------------------------------------
[ "$CLUSTER" = 1 ] || exit 0

# A base port P with P..P+n-1, their batch ports (+1000) and bus ports
# (+10000) free.
free_base() {
  /usr/bin/python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    base = random.randrange(20000, 50000)
    if all(free(base + i + d) for i in range(n) for d in (0, 1000, 10000)):
        print(base); break
else:
    sys.exit("no free base port")
PY
}

CROWS=$WORK/cluster-rows.tsv
: >"$CROWS"
REFUSED=""

# start_cluster n: CNODES = "host:batchport,..." of its nodes. Not in a
# $(...): CLUSTER_DIRS and REFUSED must reach this shell.
start_cluster() {
  local n=$1 base dir
  CNODES=""
  base=$(free_base "$n") || { REFUSED="no free ports for a $n-node cluster"; return 1; }
  dir=$WORK/cluster-$n
  CLUSTER_DIRS+=("$dir")
  if ! tools/pier-cluster start "$n" --base-port "$base" --dir "$dir" -- --save "" \
      >"$WORK/cluster-$n.log" 2>&1; then
    REFUSED="tools/pier-cluster start $n failed: $(tail -n 3 "$WORK/cluster-$n.log" | tr '\n' ' ')"
    return 1
  fi
  local i
  for i in $(seq 0 $((n - 1))); do CNODES="$CNODES${CNODES:+,}127.0.0.1:$((base + 1000 + i))"; done
}

# crow name nodes pier-bench-args...: one row into $CROWS, or REFUSED set
# (ERROR 8 or a batch port that is off) when the server refuses.
crow() {
  local name=$1 nodes=$2 out err
  shift 2
  [ -z "$REFUSED" ] || return 0
  echo "== cluster: $name" >&2
  if out=$(build/pier-bench log --nodes "$nodes" -d "$SIZE" --total "$CTOTAL" --conns "$CONNS" \
             --codec "$CODEC" --batch "$BATCH" --json -q --topic "cmp:cluster:$name" "$@" \
             2>"$WORK/row.err"); then
    printf '%s\t%s\n' "$name" "$(printf '%s' "$out" | tr -d '\n')" >>"$CROWS"
    return 0
  fi
  err=$(grep -m1 -E "server error|batch port|cannot open" "$WORK/row.err" || tail -n 1 "$WORK/row.err")
  if grep -qE "server error 8|is the batch port on|Connection refused" "$WORK/row.err"; then
    REFUSED="the server refused ($name): $err"
  else
    printf '%s\t{"failed":1,"error":"%s"}\n' "$name" "$(printf '%s' "$err" | tr -d '"\\')" >>"$CROWS"
  fi
}

if start_cluster 1; then
  crow "1 node: order 1, ack 1" "$CNODES" --order-level 1 --ack-level 1
  tools/pier-cluster stop --dir "$WORK/cluster-1" >/dev/null 2>&1 || true
fi
if [ -z "$REFUSED" ] && start_cluster 3; then
  C3=$CNODES
  C3_2=${C3%,*}
  crow "3 nodes, 2 published to: order 1, ack 1" "$C3_2" --order-level 1 --ack-level 1
  crow "3 nodes: order 1, ack 1" "$C3" --order-level 1 --ack-level 1
  crow "3 nodes: order 0, ack 1" "$C3" --order-level 0 --ack-level 1
  crow "3 nodes: order 2, ack 1" "$C3" --order-level 2 --ack-level 1
  crow "3 nodes: order 2, ack 2, RF 1" "$C3" --order-level 2 --ack-level 2 --replication 1
  crow "3 nodes: order 2, ack 2, RF 2" "$C3" --order-level 2 --ack-level 2 --replication 2
  crow "3 nodes: order 2, ack 2, RF 3" "$C3" --order-level 2 --ack-level 2 --replication 3
  crow "3 nodes: leader killed (order 2, ack 2, RF 2)" "$C3" --order-level 2 --ack-level 2 \
       --replication 2 --kill-leader-at "$KILL_AT"
fi

/usr/bin/python3 - "$CROWS" "$CTOTAL" "$SIZE" "$CONNS" "$REFUSED" <<'PY'
import json, sys
path, total, size, conns, refused = sys.argv[1:6]
rows = []
for line in open(path):
    name, js = line.rstrip("\n").split("\t", 1)
    rows.append((name, json.loads(js)))
print()
print(f"cluster rows: one striped publisher, {size} messages, {total} each, {conns} connection(s) per node")
if rows:
    print(f"{'run':<46}{'MiB/s':>10}  notes")
for name, r in rows:
    if r.get("failed"):
        print(f"{name:<46}{'failed':>10}  {r.get('error', '')}")
        continue
    note = ""
    if r.get("leader_killed"):
        st = r.get("stall_s")
        note = (f"stall {st:.3f} s; before {r['mib_per_sec_before_kill']:.1f}, "
                f"after {r['mib_per_sec_after_stall']:.1f} MiB/s" if st is not None
                else "no ACK after the kill")
    elif "kill_s" in r:
        note = "the leader was not killed"
    print(f"{name:<46}{r['mib_per_sec']:>10.1f}  {note}")
def mib(name):
    r = dict(rows).get(name)
    return r["mib_per_sec"] if r and not r.get("failed") else None
for label, a, b, goal in [
        ("order level 2 / 0 (ack 1)", "3 nodes: order 2, ack 1", "3 nodes: order 0, ack 1", 0.9),
        ("RF 2 / RF 1 (order 2, ack 2)", "3 nodes: order 2, ack 2, RF 2", "3 nodes: order 2, ack 2, RF 1", 0.45)]:
    x, y = mib(a), mib(b)
    if x is not None and y:
        print(f"ratio {label:<32}{x / y:>6.2f}  (goal >= {goal})")
if refused:
    print(f"cluster rows stopped: {refused}")
PY
