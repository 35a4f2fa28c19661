#!/usr/bin/env bash
# One command: make the benchmark's own environment (fluxabee + the peers), then run it.
#   benchmarks/run.sh [--n 20000] [--runs 5] [--skip-peers]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is not on PATH: apt-get install -y redis-server" >&2
  exit 1
fi
python3 -m venv benchmarks/.venv
benchmarks/.venv/bin/pip install -q -r benchmarks/requirements.txt -e .
exec benchmarks/.venv/bin/python -m benchmarks.run "$@"
