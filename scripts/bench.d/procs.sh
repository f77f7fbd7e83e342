# Processes and ports of scripts/bench: every process it starts is remembered
# and killed on exit, failure included. Sourced by scripts/bench.
# shellcheck shell=bash

WORK=""
PIDS=()
STARTED_PID=""

cleanup() {
  stop_started
  [[ -n $WORK ]] && rm -rf "$WORK"
}

# start <name> <command...>: runs a process in the background, output appended
# to $WORK/<name>.log, remembered for cleanup; its PID is left in STARTED_PID
# (not echoed: a $(...) subshell would lose it).
start() {
  local name=$1
  shift
  "$@" >>"$WORK/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

# stop_started: ends every process started so far (between suites, and on exit).
stop_started() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

# alive <pid> <name>: dies with the end of the process's log if it has exited.
alive() {
  kill -0 "$1" 2>/dev/null && return 0
  tail -n 20 "$WORK/$2.log" >&2 || true
  die "$2 (pid $1) exited; its log is above"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# claim_ports <first> <count>: dies unless every port of the range is free.
claim_ports() {
  local p
  for p in $(seq "$1" $(($1 + $2 - 1))); do
    port_free "$p" || die "port $p is in use; set BENCH_BASE_PORT to a free range"
  done
}

peak_rss_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# cpu_ms <pid>: CPU time (user + system, all threads) the process has used so far.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }

# start_redis <primary port> <replica port>: an unpersisted primary and a
# replica of it, as the services expect (web-inc WAITs for the replica); the
# replica's PID in STARTED_PID.
start_redis() {
  log "starting redis primary :$1 and replica :$2"
  start "redis-$1" redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK"
  start "redis-$2" redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    --replicaof 127.0.0.1 "$1"
  local replica_pid=$STARTED_PID
  wait_until 20 "the replica to sync" sh -c "redis-cli -p $2 info replication | grep -q master_link_status:up"
  STARTED_PID=$replica_pid
}

# start_service <name> <port> <binary> [flags...]: a service on 127.0.0.1:<port>, started
# and live; PID in STARTED_PID.
start_service() {
  local name=$1 port=$2 binary=$3 pid
  shift 3
  start "$name" "$binary" --listen "127.0.0.1:$port" --log-level warn "$@"
  pid=$STARTED_PID
  wait_until 20 "$name on :$port" curl -sf -o /dev/null "http://127.0.0.1:$port/health/live"
  alive "$pid" "$name"
  STARTED_PID=$pid
}

# wait_started <pid>: waits for a started process to end, returns its status,
# and forgets it (its PID may be reused; cleanup must not kill a stranger).
wait_started() {
  local pid=$1 rc=0 kept=() p
  wait "$pid" || rc=$?
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
  return "$rc"
}
