#!/usr/bin/env bash
# The GPU check (docs/gpu.md): benchmarks/gpu_check.sh [--cpu] [--out DIR]
# Runs benchmarks/gpu_check.py with this checkout's instrec first on the path (a GPU machine
# may have no instrec installed), using ./.venv's python when there is one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python=python3
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$python" "$root/benchmarks/gpu_check.py" "$@"
