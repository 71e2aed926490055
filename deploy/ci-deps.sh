#!/usr/bin/env bash
# Installs the system packages gapsync's test suite needs (Debian/Ubuntu). Idempotent:
# packages already present are not fetched again. Run as root (CI runs it from .ci/run).
set -euo pipefail

packages=(
  sqlite3   # the sqlite3 CLI: batch files must run unchanged in it (tested)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ci-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "ci-deps: all packages present"
fi
