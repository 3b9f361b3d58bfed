#!/usr/bin/env bash
# Streams side by side with redis-server: XADD (100 B, 4 KB), XRANGE 1000,
# XREADGROUP + XACK. See bench/compare_streams.py (--rounds N, --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory deps
make --no-print-directory build/pier-server >/dev/null
exec /usr/bin/python3 bench/compare_streams.py "$@"
