#!/usr/bin/env bash
# Install, then run the support-tickets demo into runs/demo (report: runs/demo/report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/deployable run examples/support-tickets/deployable.yaml --out runs/demo "$@"
