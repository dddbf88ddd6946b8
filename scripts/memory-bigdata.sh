#!/usr/bin/env bash
# Peak memory of pgtls on long inputs, which must follow the number of distinct clients and not the length of the log:
#
#   long log     LINES lines of connection log (LINES/2 connections, received + authorized) of 1,000 distinct clients
#   scanner      ADDRESSES connections, each from a distinct client address (2 x ADDRESSES lines), one user
#
# each read from its start by `pgtls check --server-log LOG --ledger LEDGER` against the lab server
# (benches/perf_lab.rs holding no sessions), with a fresh ledger. Per case it prints the log's size, the wall time,
# the peak RSS of the pgtls process (/usr/bin/time -v "Maximum resident set size", the kernel's VmHWM) and the
# ledger file's size at the end.
#
#   bash scripts/memory-bigdata.sh                            # LINES=1000000 ADDRESSES=3000000
#   LINES=200000 ADDRESSES=100000 bash scripts/memory-bigdata.sh
#   PGTLS_BIN=/path/to/other/pgtls bash scripts/memory-bigdata.sh   # another build, e.g. before a change
#
# Not part of `cargo test`. Needs: /usr/bin/time, awk, PostgreSQL server binaries (as the lab does); a few GB of
# free space in $TMPDIR for the scanner's log (about 190 bytes a line).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-1000000}
ADDRESSES=${ADDRESSES:-3000000}
target_dir=${CARGO_TARGET_DIR:-target}

[ -x /usr/bin/time ] || { echo "memory-bigdata: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; }
echo "memory-bigdata: building (cargo build --release; the lab holder with cargo bench --no-run)" >&2
cargo build --release --quiet --bin pgtls
lab_bin=$(cargo bench --no-run --bench perf_lab --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*perf_lab[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$lab_bin" ] || { echo "memory-bigdata: cannot build benches/perf_lab.rs" >&2; exit 2; }
pgtls_bin=${PGTLS_BIN:-$target_dir/release/pgtls}

work=$(mktemp -d "${TMPDIR:-/tmp}/pgtls-memory.XXXXXX")
holder_pid=""
cleanup() {
  if [ -n "$holder_pid" ]; then
    kill -TERM "$holder_pid" 2>/dev/null || true
    wait "$holder_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

env_file="$work/lab.env"
"$lab_bin" hold 0 "$env_file" 2>"$work/lab.log" &
holder_pid=$!
for _ in $(seq 1 300); do
  [ -f "$env_file" ] && break
  kill -0 "$holder_pid" 2>/dev/null || { cat "$work/lab.log" >&2; exit 1; }
  sleep 1
done
[ -f "$env_file" ] || { echo "memory-bigdata: the lab did not come up" >&2; exit 1; }
# shellcheck disable=SC1090
source "$env_file"
conninfo="host=$LAB_HOST port=$LAB_PORT dbname=postgres user=perf_pgtls sslmode=verify-full sslrootcert=$LAB_CA"

# The lab's log_line_prefix is '%m [%p] '; pids cycle below 4,194,304 as Linux's do.
gen_long_log() {
  awk -v n="$1" 'BEGIN {
    for (i = 0; i < n / 2; i++) {
      c = i % 1000; pid = 100000 + i % 4000000
      printf "2026-11-27 17:42:50.000 UTC [%d] LOG:  connection received: host=10.7.%d.%d port=5432\n", pid, int(c / 256), c % 256
      printf "2026-11-27 17:42:50.001 UTC [%d] LOG:  connection authorized: user=app%d database=shop application_name=batch SSL enabled (protocol=TLSv1.2, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256)\n", pid, c
    }
  }'
}

gen_scanner_log() {
  awk -v n="$1" 'BEGIN {
    for (i = 0; i < n; i++) {
      pid = 100000 + i % 4000000
      printf "2026-11-27 17:42:50.000 UTC [%d] LOG:  connection received: host=10.%d.%d.%d port=5432\n", pid, int(i / 65536) % 256, int(i / 256) % 256, i % 256
      printf "2026-11-27 17:42:50.001 UTC [%d] LOG:  connection authorized: user=scanner database=postgres SSL enabled (protocol=TLSv1.2, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256)\n", pid
    }
  }'
}

measure() {
  local name=$1 log=$2 ledger="$work/$1.ledger"
  local started ended code
  started=$(date +%s.%N)
  set +e
  env PGPASSWORD="$LAB_PASSWORD" HOME="$work" /usr/bin/time -v -o "$work/$name.time" \
    "$pgtls_bin" check "$conninfo" --server-log "$log" --ledger "$ledger" --format json >"$work/$name.json"
  code=$?
  set -e
  ended=$(date +%s.%N)
  local rss_kb sessions
  rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/$name.time")
  sessions=$(grep -o '"sessions": *[0-9]*' "$work/$name.json" | head -1 | grep -o '[0-9]*$' || echo '?')
  printf '%-10s %12s lines %8.1f MB log %7.1f s %8.1f MB peak RSS %8.1f KB ledger  exit %s  evidence sessions %s\n' \
    "$name" "$(wc -l <"$log")" "$(echo "$(stat -c %s "$log") / 1048576" | bc -l)" \
    "$(echo "$ended - $started" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" \
    "$(echo "$(stat -c %s "$ledger") / 1024" | bc -l)" "$code" "$sessions"
}

echo "memory-bigdata: PostgreSQL $LAB_VERSION; pgtls $("$pgtls_bin" --version 2>/dev/null | awk '{print $2}') ($pgtls_bin)" >&2
gen_long_log "$LINES" >"$work/long.log"
measure long "$work/long.log"
rm -f "$work/long.log"
gen_scanner_log "$ADDRESSES" >"$work/scanner.log"
measure scanner "$work/scanner.log"
