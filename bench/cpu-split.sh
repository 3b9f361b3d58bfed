#!/usr/bin/env bash
# User vs system CPU per request: redis-server, pier (1 loop), floor; pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory deps
make --no-print-directory build/pier-server build/pier-bench build/floor-server >/dev/null
exec /usr/bin/python3 bench/cpu_split.py "$@"
