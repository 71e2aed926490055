#!/usr/bin/env bash
# Runs each gapsync fuzz target for a bounded time (default 60 s each) with cargo-fuzz
# (libFuzzer + AddressSanitizer). Exits non-zero if any target finds a crash, a leak,
# an out-of-memory input or a timeout; the input is saved under fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz uses nightly-only rustc flags
# (-Zsanitizer=address); on a stable toolchain this script sets RUSTC_BOOTSTRAP=1 so
# that stable rustc accepts them. Seeds (written by gapsync's own encoders, see
# examples/make_seeds.rs) are in fuzz/seeds/<target>/; new corpus entries go to
# fuzz/corpus/<target>/ (not versioned).
set -euo pipefail

secs="${1:-60}"
shift || true
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame_decoder batch_parser statement_validator link_auth)
fi

export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
cargo fuzz build -O

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${secs}s"
    if ! cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1; then
        echo "!! $t failed: see fuzz/artifacts/$t/" >&2
        status=1
    fi
done
exit $status
