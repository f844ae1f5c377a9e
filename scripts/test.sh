#!/usr/bin/env bash
# Lint, type-check and test instrec (after `bash scripts/setup.sh --dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
"$bin/ruff" check instrec tests benchmarks
"$bin/ruff" format --check instrec tests benchmarks
"$bin/mypy"
"$bin/lint-imports" --no-cache | sed -n '/^Contracts/,$p' # layers: pyproject.toml
"$bin/python" -m pytest "$@"
