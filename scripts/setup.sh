#!/usr/bin/env bash
# Create .venv and install deployable with the pinned CPU build of torch (constraints.txt).
#   scripts/setup.sh          runtime + examples
#   scripts/setup.sh --dev    also test tools, and Debian's chromium for the report's browser test
set -euo pipefail
cd "$(dirname "$0")/.."
extra="all"
if [ "${1:-}" = "--dev" ]; then
  extra="dev"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[${extra}]"
