#!/usr/bin/env bash
# Builds the Debian packages gapsync-sender and gapsync-receiver (cargo-deb, installed
# here if missing) into target/debian/, with man pages and shell completions generated
# by the binaries themselves. PROFILE=dev builds a quick package for CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-release}"
if ! command -v cargo-deb >/dev/null 2>&1; then
  cargo install cargo-deb --locked --version 3.6.0
fi
cargo build --profile "$profile" --workspace --features odbc
dir="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"
for side in sender receiver; do
  "$dir/gapsync-$side" docs --out "target/docs/$side" >/dev/null
  cargo deb -p "gapsync-$side" --no-build --profile "$profile"
done
# Each package holds what a plant installs: the binary, the unit, the system user, the
# example configuration, the man page and the completions.
for side in sender receiver; do
  deb=$(ls -t target/debian/gapsync-"$side"_*.deb | head -n1)
  listing=$(dpkg-deb -c "$deb")
  for f in "usr/bin/gapsync-$side" "usr/lib/systemd/system/gapsync-$side.service" \
           usr/lib/sysusers.d/gapsync.conf "usr/share/doc/gapsync-$side/examples/$side.toml" \
           "usr/share/man/man1/gapsync-$side.1.gz" "usr/share/bash-completion/completions/gapsync-$side" \
           "usr/share/zsh/vendor-completions/_gapsync-$side" "usr/share/fish/vendor_completions.d/gapsync-$side.fish"; do
    grep -Eq " (\./)?$f\$" <<<"$listing" || { echo "package.sh: $deb lacks $f" >&2; exit 1; }
  done
  dpkg-deb -I "$deb" control | grep -q '^ *Package: gapsync-'"$side"'$' || { echo "package.sh: $deb: bad control" >&2; exit 1; }
  echo "$deb: complete"
done
