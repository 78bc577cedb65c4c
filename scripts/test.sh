#!/usr/bin/env bash
# Install with test tools (and chromium), lint, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check src tests examples benchmarks scripts
.venv/bin/ruff format --check src tests examples benchmarks scripts
.venv/bin/python -m pytest "$@"
