#!/usr/bin/env bash
# What a monitor costs, side by side in one run: the psql `\watch 1` floor, pgtls and pg_activity, each watching the
# same lab server with N idle sessions at a 1 s refresh, one after another, in a tmux pane of 160x48.
#
#   bash scripts/perf-compare.sh              # N = 200 and 2000, 30 s per monitor
#   bash scripts/perf-compare.sh 200          # one size
#   DURATION=60 MONITORS="psql pgtls" bash scripts/perf-compare.sh 200
#   FLOOR=full MONITORS="psql pgtls" bash scripts/perf-compare.sh     # psql runs the 28 columns pgtls fetches instead
#   PGTLS_BIN=/path/to/other/pgtls MONITORS=pgtls bash scripts/perf-compare.sh 200   # another build, e.g. before a change
#
# The lab (benches/perf_lab.rs) runs PostgreSQL with pg_stat_statements loaded and max_connections = N + 100, and
# holds N sessions (6/10 TLS 1.3, 2/10 TLS 1.2, 1/10 plain TCP, 1/10 Unix socket) left `idle in transaction`, so that
# pg_activity, which hides `idle` sessions, lists them as pgtls does. Each monitor connects over TCP with
# sslmode=verify-full as its own role (perf_psql, perf_pgtls, perf_pga; members of pg_monitor). pg_activity is
# installed with pip into target/perf-venv; where pip cannot, its rows say so.
#
# Per monitor, after WARMUP s (start-up excluded), over DURATION s:
#   refreshes      statements of the monitor's most frequent query, from pg_stat_statements (per role)
#   client CPU     user+system time of the monitor process and every thread it ever had: the process is moved into a
#                  cgroup of its own and cpuacct.usage (cgroup v1) or cpu.stat usage_usec (v2) is read, in ns/us;
#                  without a writable cgroup, /proc/PID/task/*/schedstat (threads that exit are missed). The
#                  /proc/PID/stat utime+stime figure (10 ms ticks, exited threads included) is shown as a cross-check
#   server CPU     the same for the monitor's backend(s) (found by role in pg_stat_activity), /proc/PID/schedstat
#   peak RSS       VmHWM of the monitor process at the end (start-up included)
#   round trips    requests the client sent: TCP segments with data from the monitor's socket (`ss -ti`
#                  data_segs_out); every request of these clients is one write
#   statements     all statements of the role in pg_stat_statements
#   core           client CPU over the wall time: the share of one core the monitor uses
#
# Needs: root (reads other processes' /proc), PostgreSQL server binaries with contrib, psql, tmux, ss, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
WARMUP=${WARMUP:-5}
COLS=${COLS:-160}
ROWS=${ROWS:-48}
MONITORS=${MONITORS:-"psql pgtls pg_activity"}
VENV=${PERF_VENV:-target/perf-venv}
OUT_DIR=target/perf-compare
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(200 2000)

for tool in tmux psql ss python3; do
  command -v "$tool" >/dev/null || { echo "perf-compare: $tool is needed" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "perf-compare: run as root (reads the server's /proc entries)" >&2; exit 2; }

mkdir -p "$OUT_DIR"
work=$(mktemp -d /tmp/pgtls-perf.XXXXXX)
sock="pgtls-perf-$$"
holder_pid=""
cleanup() {
  tmux -L "$sock" kill-server 2>/dev/null || true
  if [ -n "$holder_pid" ]; then
    kill -TERM "$holder_pid" 2>/dev/null || true
    wait "$holder_pid" 2>/dev/null || true
  fi
  [ -z "${cg_root:-}" ] || rmdir "$cg_root"/pgtls-perf-$$-* 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "perf-compare: building (cargo build --release; the lab holder with cargo bench --no-run)" >&2
[ -n "${PGTLS_BIN:-}" ] || cargo build --release --quiet
# PERF_LAB_BIN: a lab holder built already (e.g. `cargo test --bench perf_lab --no-run`, unoptimised: it only waits).
lab_bin=${PERF_LAB_BIN:-$(cargo bench --no-run --bench perf_lab --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*perf_lab[^"]*"' | tail -1 | cut -d'"' -f4)}
[ -x "$lab_bin" ] || { echo "perf-compare: cannot build benches/perf_lab.rs" >&2; exit 2; }
pgtls_bin=${PGTLS_BIN:-target/release/pgtls}

pga_note=""
if [[ " $MONITORS " == *" pg_activity "* ]] && [ ! -x "$VENV/bin/pg_activity" ]; then
  echo "perf-compare: installing pg_activity into $VENV (pip install pg_activity 'psycopg[binary]')" >&2
  if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet pg_activity 'psycopg[binary]'; } >"$work/pip.log" 2>&1; then
    pga_note="pg_activity skipped: pip could not install it ($(tail -1 "$work/pip.log"))"
  fi
fi
pga_version=""
[ -x "$VENV/bin/pg_activity" ] && pga_version=$("$VENV/bin/pg_activity" --version 2>/dev/null | awk '{print $2}')

# The floor: the seed's own query, what a DBA types to see who is on TLS (six columns, pg_stat_ssl joined to
# pg_stat_activity), run by psql every second. FLOOR=full runs instead the session columns pgtls fetches
# (pg_stat_activity joined to pg_stat_ssl and pg_stat_gssapi, 28 columns), a heavier floor.
if [ "${FLOOR:-seed}" = full ]; then
cat >"$work/floor.sql" <<'SQL'
SELECT a.pid, a.leader_pid, a.datname, a.usename, a.application_name, host(a.client_addr), a.client_hostname,
       a.client_port, a.backend_type, a.state, a.backend_start, a.xact_start, a.query_start, a.state_change,
       a.wait_event_type, a.wait_event, a.query, a.query_id, s.ssl, s.version, s.cipher, s.bits, s.client_dn,
       s.client_serial, s.issuer_dn, g.gss_authenticated, g.principal, g.encrypted
  FROM pg_catalog.pg_stat_activity a
  LEFT JOIN pg_catalog.pg_stat_ssl s ON s.pid = a.pid
  LEFT JOIN pg_catalog.pg_stat_gssapi g ON g.pid = a.pid
 WHERE a.client_port IS NOT NULL \watch 1
SQL
else
  cat >"$work/floor.sql" <<'SQL'
SELECT datname, usename, ssl, client_addr, application_name, backend_type FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \watch 1
SQL
fi

admin() {
  psql -h "$LAB_SOCKET_DIR" -p "$LAB_PORT" -U postgres -d postgres -XAtq -F ' ' -c "$1"
}

# A cgroup for the monitor process, so CPU time of threads that come and go is counted too.
cg_root=""
cg_kind=""
if [ -w /sys/fs/cgroup/cpuacct ] && [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
  cg_root=/sys/fs/cgroup/cpuacct cg_kind=v1
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -w /sys/fs/cgroup ]; then
  cg_root=/sys/fs/cgroup cg_kind=v2
fi
cpu_method="threads' schedstat (a thread that exits is missed)"
[ "$cg_kind" = v1 ] && cpu_method="cgroup v1 cpuacct.usage"
[ "$cg_kind" = v2 ] && cpu_method="cgroup v2 cpu.stat usage_usec"

# Put the process in a cgroup of its own; prints the cgroup's directory, or nothing.
cgroup_for() {
  [ -n "$cg_root" ] || return 0
  local dir="$cg_root/pgtls-perf-$$-$2"
  mkdir -p "$dir" 2>/dev/null && echo "$1" >"$dir/cgroup.procs" 2>/dev/null && echo "$dir"
}

# CPU time in ns of everything in the cgroup since it was made, else of the process's live threads.
process_ns() {
  if [ -n "$2" ] && [ "$cg_kind" = v1 ]; then
    cat "$2/cpuacct.usage"
  elif [ -n "$2" ]; then
    awk '/^usage_usec/ {printf "%d\n", $2 * 1000}' "$2/cpu.stat"
  else
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'
  fi
}

# utime + stime in clock ticks (fields 14 and 15; the command name may hold spaces, so count from the last ')').
stat_ticks() {
  sed 's/.*) //' /proc/"$1"/stat | awk '{print $12 + $13}'
}

backend_pids() {
  admin "SELECT pid FROM pg_catalog.pg_stat_activity WHERE usename = '$1' AND backend_type = 'client backend'"
}

backends_ns() {
  local total=0 pid
  for pid in $1; do
    total=$((total + $(awk '{print $1}' /proc/"$pid"/schedstat 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Data segments the process's TCP sockets to the lab have sent.
segs_out() {
  ss -tinpH "( dport = :$LAB_PORT )" 2>/dev/null | awk -v pid="pid=$1," '
    index($0, pid) { mine = 1; next }
    mine { if (match($0, /data_segs_out:[0-9]+/)) s += substr($0, RSTART + 14, RLENGTH - 14); mine = 0 }
    END { printf "%d\n", s }'
}

statements() {
  admin "SELECT s.queryid, s.calls FROM pg_stat_statements s JOIN pg_catalog.pg_roles r ON r.oid = s.userid
         WHERE r.rolname = '$1' ORDER BY 1" >"$2"
}

# Prints: refreshes statements (deltas between two pg_stat_statements captures).
statement_deltas() {
  awk 'NR == FNR { before[$1] = $2; next } { d = $2 - before[$1]; total += d; if (d > most) most = d }
       END { printf "%d %d\n", most, total }' "$1" "$2"
}

results="$OUT_DIR/results.md"
{
  echo "| sessions | monitor | refreshes | client CPU ms/refresh | (stat ticks) | server CPU ms/refresh | peak RSS MB | round trips/refresh | statements/refresh | client % of a core |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$results"

measure() {
  local n=$1 monitor=$2 role cmd
  local conninfo="host=$LAB_HOST port=$LAB_PORT dbname=postgres sslmode=verify-full sslrootcert=$LAB_CA"
  case $monitor in
    psql)
      role=perf_psql
      cmd=(psql "$conninfo user=$role application_name=perf-psql" -X -q -P pager=off -f "$work/floor.sql")
      ;;
    pgtls)
      role=perf_pgtls
      cmd=("$pgtls_bin" "$conninfo user=$role application_name=perf-pgtls" --interval 1)
      ;;
    pg_activity)
      role=perf_pga
      if [ ! -x "$VENV/bin/pg_activity" ]; then
        echo "| $n | pg_activity | ${pga_note:-not installed} | | | | | | | |" >>"$results"
        return
      fi
      cmd=("$VENV/bin/pg_activity" --refresh 1 "$conninfo user=$role application_name=perf-pg_activity")
      ;;
  esac
  echo "perf-compare: N=$n $monitor: ${WARMUP}s warm-up, ${DURATION}s measured" >&2
  local quoted
  quoted=$(printf '%q ' "${cmd[@]}")
  local pid
  pid=$(env -u TMUX tmux -L "$sock" -f /dev/null new-session -d -x "$COLS" -y "$ROWS" -P -F '#{pane_pid}' \
    "exec env PGPASSWORD=$LAB_PASSWORD HOME=$work TERM=tmux-256color $quoted")
  [ -n "$pid" ] || { echo "perf-compare: tmux did not start $monitor" >&2; return; }
  local cg
  cg=$(cgroup_for "$pid" "$monitor")
  sleep "$WARMUP"
  if [ ! -d "/proc/$pid" ]; then
    echo "| $n | $monitor | exited at start-up | | | | | | | |" >>"$results"
    tmux -L "$sock" kill-server 2>/dev/null || true
    return
  fi
  local backends
  backends=$(backend_pids "$role" | tr '\n' ' ')
  statements "$role" "$work/s0"
  local c0 t0 b0 r0 w0 c1 t1 b1 r1 w1
  c0=$(process_ns "$pid" "$cg"); t0=$(stat_ticks "$pid"); b0=$(backends_ns "$backends"); r0=$(segs_out "$pid")
  w0=$(date +%s%N)
  sleep "$DURATION"
  c1=$(process_ns "$pid" "$cg"); t1=$(stat_ticks "$pid"); b1=$(backends_ns "$backends"); r1=$(segs_out "$pid")
  w1=$(date +%s%N)
  statements "$role" "$work/s1"
  local hwm
  hwm=$(awk '/VmHWM/ {print $2}' /proc/"$pid"/status)
  tmux -L "$sock" capture-pane -p >"$OUT_DIR/screen-$n-$monitor.txt" 2>/dev/null || true
  tmux -L "$sock" kill-server 2>/dev/null || true
  if [ -n "$cg" ]; then
    for _ in $(seq 1 50); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    rmdir "$cg" 2>/dev/null || true
  fi
  local refreshes stmts
  read -r refreshes stmts < <(statement_deltas "$work/s0" "$work/s1")
  if [ "$refreshes" -eq 0 ]; then
    echo "| $n | $monitor | no refresh seen | | | | | | | |" >>"$results"
    return
  fi
  local hz
  hz=$(getconf CLK_TCK)
  awk -v n="$n" -v m="$monitor" -v r="$refreshes" -v c=$((c1 - c0)) -v t=$((t1 - t0)) -v hz="$hz" \
    -v b=$((b1 - b0)) -v hwm="$hwm" -v rt=$((r1 - r0)) -v st="$stmts" -v wall=$((w1 - w0)) 'BEGIN {
      printf "| %d | %s | %d | %.2f | %.1f | %.2f | %.1f | %.2f | %.2f | %.2f%% |\n",
        n, m, r, c / 1e6 / r, t * 1000 / hz / r, b / 1e6 / r, hwm / 1024, rt / r, st / r, 100 * c / wall
    }' >>"$results"
}

for n in "${SIZES[@]}"; do
  env_file="$work/lab-$n.env"
  echo "perf-compare: starting the lab with $n sessions" >&2
  "$lab_bin" hold "$n" "$env_file" 2>"$work/lab-$n.log" &
  holder_pid=$!
  for _ in $(seq 1 900); do
    [ -f "$env_file" ] && break
    kill -0 "$holder_pid" 2>/dev/null || { cat "$work/lab-$n.log" >&2; exit 1; }
    sleep 1
  done
  [ -f "$env_file" ] || { echo "perf-compare: the lab did not come up" >&2; exit 1; }
  # shellcheck disable=SC1090
  source "$env_file"
  cat "$work/lab-$n.log" >&2
  for monitor in $MONITORS; do
    measure "$n" "$monitor"
  done
  kill -TERM "$holder_pid"
  wait "$holder_pid" || true
  holder_pid=""
done

{
  echo
  echo "PostgreSQL $LAB_VERSION; pgtls $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes');" \
    "pg_activity ${pga_version:-not installed}; psql floor ${FLOOR:-seed}; psql $(psql --version | awk '{print $3}'); ${DURATION} s per monitor" \
    "after ${WARMUP} s warm-up, 1 s refresh, ${COLS}x${ROWS} tmux pane; $(nproc) cores, $(uname -r);" \
    "client CPU from $cpu_method."
  [ -z "$pga_note" ] || echo "$pga_note"
} >>"$results"
cat "$results"
