#!/usr/bin/env bash
# Create .venv and install deployable with the pinned CPU build of torch (constraints.txt).
#   scripts/setup.sh          runtime + examples
#   scripts/setup.sh --dev    also test tools, Debian's chromium for the report's browser test and PostgreSQL for the
#                             registry tests
set -euo pipefail
cd "$(dirname "$0")/.."
extra="all"
apt_install() {  # Debian packages, as root or through sudo
  local sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ "${1:-}" = "--dev" ]; then
  extra="dev"
  command -v chromium >/dev/null 2>&1 || apt_install chromium
  # PostgreSQL for the registry tests (they start a throwaway cluster with initdb; they never use a running server)
  if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[${extra}]"
