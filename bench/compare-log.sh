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
# Usage: bench/compare-log.sh [--size 4kb] [--total 1gb] [--conns 1]
#                             [--pipeline 16] [--xadd-conns 4] [--codec lz4]
# Sizes take the server's units (4kb = 4096, 4k = 4000), in both tools.
# Servers run on free ports and are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=4kb TOTAL=1gb CONNS=1 PIPELINE=16 XCONNS=4 CODEC=lz4 BATCH=2mb
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --total) TOTAL=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    --xadd-conns) XCONNS=$2; shift 2 ;;
    --codec) CODEC=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

make --no-print-directory deps
make --no-print-directory build/pier-server build/pier-bench build/tcp-ceiling >/dev/null
command -v redis-server >/dev/null || { echo "redis-server missing (make deps)" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
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
