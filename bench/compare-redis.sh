#!/usr/bin/env bash
# Side by side with redis-server on this machine: throughput, latency and
# server CPU per request, pier vs Redis vs a floor server. See
# bench/compare_redis.py for what is measured; options pass through
# (--rounds N, --quick, --skip-long, --skip-memory).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory deps
make --no-print-directory build/pier-server build/pier-bench build/floor-server >/dev/null
exec /usr/bin/python3 bench/compare_redis.py "$@"
