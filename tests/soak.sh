#!/usr/bin/env bash
# On-site soak test before acceptance: the reliability suite's mix (every gap fault,
# kill -9 of sender and receiver, target outages, a steady workload) for HOURS hours,
# on this machine's loopback, with release binaries.
#
#   bash tests/soak.sh 8            # eight hours
#   bash tests/soak.sh 0.25 --rate 500 --kill-every 1m
#
# Prints a summary line every minute and a final verdict line ("soak verdict: PASS ..."
# or "soak verdict: FAIL ..."); exits 0 only on PASS. Extra arguments go to
# gapsync-soak (see `target/release/gapsync-soak --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
  echo "usage: bash tests/soak.sh HOURS [gapsync-soak options]" >&2
  exit 2
fi
hours="$1"
shift
if ! [[ "$hours" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "soak.sh: HOURS must be a number of hours (e.g. 8 or 0.5), got '$hours'" >&2
  exit 2
fi

cargo build --release --workspace
exec target/release/gapsync-soak --duration "${hours}h" "$@"
