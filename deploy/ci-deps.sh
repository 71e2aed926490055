#!/usr/bin/env bash
# Installs the system packages gapsync's test suite needs (Debian/Ubuntu) and starts the
# database servers the ODBC tests talk to. Idempotent: packages already present are not
# fetched again, running servers are left alone. Run as root (CI runs it from .ci/run).
set -euo pipefail

packages=(
  sqlite3          # the sqlite3 shell: batch files must run unchanged in it (tested)
  unixodbc         # ODBC driver manager (odbcinst)
  unixodbc-dev     # headers and libodbc for the odbc-api crate (feature "odbc")
  odbc-postgresql  # "PostgreSQL Unicode" driver
  odbc-mariadb     # "MariaDB Unicode" driver
  libsqliteodbc    # "SQLite3" driver
  python3          # the trust-boundary suite holds idle connections from other loopback addresses with it
  systemd          # systemd-analyze: the shipped units are verified and their exposure checked
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

# Database servers for the PostgreSQL / MariaDB tests (installed on the project's
# machines; started here if they stopped).
if [ -d /etc/postgresql ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "ci-deps: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if [ -x /usr/sbin/mariadbd ] && ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  echo "ci-deps: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 30); do
  pg_ok=1; my_ok=1
  [ -d /etc/postgresql ] && { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || pg_ok=0; }
  [ -x /usr/sbin/mariadbd ] && { mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 || my_ok=0; }
  [ "$pg_ok$my_ok" = 11 ] && break
  sleep 1
done
odbcinst -q -d || true
