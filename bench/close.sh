#!/usr/bin/env bash
# The session close's benchmark set for issue 15 (docs/benchmarks.md "Session N close" sections): parallel builds,
# KartRunner against SequentialRunner on /tmp and /dev/shm, and the chain of 1,000 against gokart.
# Run it on a quiet machine (no test run or other benchmark beside it): the ratios pair each kart run with its
# peer's in the same round, but a loaded machine still widens their spread. About 10 minutes on the 2-core VM.
#
#     bash bench/close.sh > /tmp/close.log 2>&1
#
# Prints the commit it measured and the load before each command, so the table can name both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# Bytecode is written as usual: with PYTHONDONTWRITEBYTECODE set, every fresh process of graph_overhead.py's
# phases would compile kart_core again and count it as build time.
run() {
  echo "== $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg): $*"
  env -u PYTHONDONTWRITEBYTECODE "$@"
}
echo "== tree $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)'), $(nproc) cores"
run "$PY" bench/parallel_build.py --dir /dev/shm
run env TMPDIR=/tmp "$PY" bench/kedro_runner.py
run env TMPDIR=/dev/shm "$PY" bench/kedro_runner.py
run "$PY" bench/graph_overhead.py --shapes chain,load-chain --sizes 1000 --workers 1 --gokart-max 1000 --dir /dev/shm
echo "== done $(date -u +%H:%M:%S) UTC"
