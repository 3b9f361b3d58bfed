#!/usr/bin/env bash
# pier's --io loop (threads 1, 2, 4) vs --io thread at 10/100/1000 clients.
# See bench/io_models.py; options pass through (--rounds N, --requests N).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory deps
make --no-print-directory build/pier-server build/pier-bench >/dev/null
exec /usr/bin/python3 bench/io_models.py "$@"
