#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 (Debian's postgresql-15) for tests:
#
#   tests/postgres/start.sh DIR
#
# initdb into DIR/data as a non-root user (initdb refuses root: as root the
# server runs as `nobody`, its files in a temporary folder when `nobody`
# cannot write DIR), password authentication (scram-sha-256) for the
# superuser `mia` with a random password, listening only on 127.0.0.1 on a
# free port (no Unix socket), then `pg_ctl start -w` and a database
# `mia_test`. Writes:
#   DIR/url   postgresql://mia:<password>@127.0.0.1:<port>/mia_test
#   DIR/ctl   `DIR/ctl stop|start|restart`: pg_ctl on this instance, as its
#             user (the reconnect tests restart the server with it)
# tests/postgres/stop.sh DIR stops it and removes DIR.
#
# PostgreSQL missing or failing to start is an error (exit 1), so the tests
# that need it fail, unless MIA_SKIP_POSTGRES=1: then it exits 0 without
# writing DIR/url, and those tests skip.
set -euo pipefail

dir=${1:?usage: start.sh DIR}
bin=${MIA_PG_BIN:-/usr/lib/postgresql/15/bin}

fail() {
  echo "postgres fixture: $*" >&2
  if [ "${MIA_SKIP_POSTGRES:-0}" = 1 ]; then
    echo "postgres fixture: MIA_SKIP_POSTGRES=1: the PostgreSQL tests skip" >&2
    exit 0
  fi
  echo "postgres fixture: install it with scripts/install-deps.sh (postgresql-15)," \
       "or set MIA_SKIP_POSTGRES=1 to skip the PostgreSQL tests" >&2
  exit 1
}

[ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] || fail "no PostgreSQL 15 in $bin"

# A previous run's instance in DIR (a killed test run): stop it first.
bash "$(dirname "$0")/stop.sh" "$dir"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# The server's own files (data, log) go in $pg; DIR keeps url and ctl.
pg=$dir
run_as=()
if [ "$(id -u)" = 0 ]; then
  run_as=(runuser -u nobody --)
  chown nobody "$dir"
  # A build tree under a folder `nobody` cannot enter (e.g. /root): the
  # server's files go to a temporary folder instead (stop.sh removes it).
  if ! runuser -u nobody -- test -w "$dir"; then
    pg=$(mktemp -d "${TMPDIR:-/tmp}/mia-postgres.XXXXXX")
    chown nobody "$pg"
  fi
fi
printf '%s\n' "$pg" > "$dir/pgdir"

password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
umask 077
printf '%s\n' "$password" > "$pg/pwfile"
[ "${#run_as[@]}" = 0 ] || chown nobody "$pg/pwfile"

"${run_as[@]}" "$bin/initdb" -D "$pg/data" -U mia --pwfile="$pg/pwfile" \
  --auth=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; fail "initdb failed"; }
rm -f "$pg/pwfile"

# The control script the tests use; the options are the server's.
cat > "$dir/ctl" <<CTL
#!/usr/bin/env bash
# pg_ctl on the test PostgreSQL of $dir (files in $pg): ctl stop|start|restart
set -euo pipefail
action=\${1:?usage: ctl stop|start|restart}
opts=(-D "$pg/data" -l "$pg/server.log" -w -t 60)
case "\$action" in
  stop) opts+=(-m fast) ;;
  start|restart) opts+=(-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c max_connections=200") ;;
esac
exec ${run_as[*]} "$bin/pg_ctl" "\${opts[@]}" "\$action"
CTL
chmod 755 "$dir/ctl"
touch "$pg/server.log"
[ "${#run_as[@]}" = 0 ] || chown nobody "$pg/server.log"

"$dir/ctl" start >/dev/null || { cat "$pg/server.log" >&2; fail "pg_ctl start failed"; }

PGPASSWORD=$password "$bin/psql" -h 127.0.0.1 -p "$port" -U mia -d postgres -v ON_ERROR_STOP=1 \
  -qc "CREATE DATABASE mia_test" >/dev/null || fail "cannot create the database mia_test"

umask 022
printf 'postgresql://mia:%s@127.0.0.1:%s/mia_test\n' "$password" "$port" > "$dir/url.tmp"
chmod 644 "$dir/url.tmp"
mv "$dir/url.tmp" "$dir/url"
echo "postgres fixture: PostgreSQL 15 on 127.0.0.1:$port (data in $pg/data)"
