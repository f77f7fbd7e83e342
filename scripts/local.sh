# Helpers for the one-machine ("local") stack, shared by scripts/up,
# scripts/down and scripts/status. Sourced, never run.
#
# Redis, Sentinel, Consul and Nomad run from the very ExecStartPre/ExecStart
# lines of the unit files in systemd/, with the unit's absolute paths mapped
# into this user's cache, so the units and local mode cannot drift:
#   /usr/local/bin/    -> $COUNTER_CACHE/bin/    (nomad, consul built by scripts/install)
#   /etc/counter/      -> $COUNTER_STATE/etc/    (links to the repo's config files)
#   /var/lib/counter/  -> $COUNTER_STATE/data/   (StateDirectory= of each unit)
# Each process runs in the background with a PID file in $COUNTER_STATE/run
# and its output in $COUNTER_STATE/log/<name>.log.
# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUN_DIR=$COUNTER_STATE/run
LOG_DIR=$COUNTER_STATE/log
DATA_DIR=$COUNTER_STATE/data
ETC_DIR=$COUNTER_STATE/etc
JOBS_DIR=$COUNTER_STATE/jobs
ARTIFACT_DIR=$COUNTER_CACHE/artifacts
: "${ARTIFACT_PORT:=8090}"
ARTIFACT_URL=http://127.0.0.1:$ARTIFACT_PORT
GATEWAY_URL=http://127.0.0.1:8080
TRAEFIK_ADMIN_URL=http://127.0.0.1:8081
AUTOSCALER_URL=http://127.0.0.1:8082
export CONSUL_HTTP_ADDR=http://127.0.0.1:8500
export NOMAD_ADDR=http://127.0.0.1:4646

# The processes scripts/up starts, in start order (scripts/down stops them in
# reverse). Traefik, web and web-inc are Nomad jobs, not processes of ours.
# The autoscaler comes last: it acts on Nomad and is stopped before it.
COMPONENTS=(redis-primary redis-replica sentinel consul nomad artifacts autoscaler)
# The Nomad jobs, in start order: the gateway first, then what it routes to.
JOBS=(traefik web web-inc)

# component_unit <name>: "<unit file> [<instance>]" for a component run from a unit.
component_unit() {
  case $1 in
    redis-primary) echo "counter-redis@.service primary" ;;
    redis-replica) echo "counter-redis@.service replica" ;;
    sentinel) echo "counter-sentinel.service" ;;
    consul) echo "consul.service" ;;
    nomad) echo "nomad.service" ;;
    *) return 1 ;;
  esac
}

# component_ports <name>: the TCP ports it listens on (checked free before start).
component_ports() {
  case $1 in
    redis-primary) echo 6380 ;;
    redis-replica) echo 6381 ;;
    sentinel) echo 26380 ;;
    consul) echo 8500 8300 8301 8302 8600 ;;
    nomad) echo 4646 4647 4648 ;;
    artifacts) echo "$ARTIFACT_PORT" ;;
    autoscaler) echo 8082 ;;
    traefik) echo 8080 8081 ;;
  esac
}

# component_ready <name>: succeeds once the component answers.
component_ready() {
  case $1 in
    redis-primary) [[ $(redis-cli -p 6380 PING 2>/dev/null) == PONG ]] ;;
    redis-replica) [[ $(redis-cli -p 6381 PING 2>/dev/null) == PONG ]] ;;
    sentinel) [[ $(redis-cli -p 26380 PING 2>/dev/null) == PONG ]] ;;
    # A leader, not just a listener: registrations fail until one is elected.
    consul) [[ $(curl -sf "$CONSUL_HTTP_ADDR/v1/status/leader") == *:* ]] ;;
    # The local node must be ready to take allocations, not only the API up.
    nomad) [[ $(curl -sf "$NOMAD_ADDR/v1/nodes") == *'"Status":"ready"'* ]] ;;
    artifacts) curl -sf -o /dev/null "$ARTIFACT_URL/" ;;
    autoscaler) curl -sf -o /dev/null "$AUTOSCALER_URL/v1/health" ;;
  esac
}

# map_unit_path <word>: a word of a unit's command line, with the unit's
# system paths replaced by their local-mode places.
map_unit_path() {
  local w=$1
  w=${w//\/usr\/local\/bin\//$COUNTER_CACHE/bin/}
  w=${w//\/etc\/counter\//$ETC_DIR/}
  w=${w//\/var\/lib\/counter\//$DATA_DIR/}
  printf '%s\n' "$w"
}

# unit_values <unit file> <instance> <key>: every value of <key>= in the unit,
# with %i replaced by the instance. Dies on what a word-by-word runner cannot
# reproduce faithfully (quotes, $VARIABLES, other specifiers).
unit_values() {
  local file=$COUNTER_ROOT/systemd/$1 instance=$2 key=$3 line
  [[ -f $file ]] || die "unit file $file not found"
  while IFS= read -r line; do
    line=${line#"$key="}
    line=${line//%i/$instance}
    if [[ $line == *[\"\'\$%\\]* ]]; then
      die "systemd/$1: '$key=$line' uses quotes, \$, % or \\; local mode runs unit commands word by word, keep them plain"
    fi
    printf '%s\n' "$line"
  done < <(grep -E "^$key=" "$file")
}

# unit_run_pre <unit file> <instance>: runs the unit's ExecStartPre= lines
# (a leading "-" ignores failure, as systemd does) and creates its
# StateDirectory=.
unit_run_pre() {
  local unit=$1 instance=${2:-} dirs pres line w words ignore cmd
  # Captured first: a die inside a process substitution would go unnoticed.
  dirs=$(unit_values "$unit" "$instance" StateDirectory) || exit 1
  pres=$(unit_values "$unit" "$instance" ExecStartPre) || exit 1
  while IFS= read -r line; do
    [[ -n $line ]] && mkdir -p "$(map_unit_path "/var/lib/$line")"
  done <<<"$dirs"
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    ignore=false
    [[ $line == -* ]] && ignore=true && line=${line#-}
    read -ra words <<<"$line"
    cmd=()
    for w in "${words[@]}"; do cmd+=("$(map_unit_path "$w")"); done
    if ! "${cmd[@]}" && ! $ignore; then
      die "systemd/$unit: ExecStartPre failed: ${cmd[*]}"
    fi
  done <<<"$pres"
}

# unit_command <unit file> <instance>: the unit's ExecStart, mapped, one word a line.
unit_command() {
  local line w words
  line=$(unit_values "$1" "${2:-}" ExecStart) || exit 1
  [[ -n $line && $line != *$'\n'* ]] || die "systemd/$1: expected exactly one ExecStart="
  read -ra words <<<"$line"
  for w in "${words[@]}"; do map_unit_path "$w"; done
}

# unit_kill_signal <unit file>: KillSignal= of the unit, SIGTERM by default.
unit_kill_signal() {
  local sig
  sig=$(unit_values "$1" "" KillSignal | tail -1)
  echo "${sig:-SIGTERM}"
}

# component_command <name>: the command line of a component, one word a line.
component_command() {
  local unit
  if unit=$(component_unit "$1"); then
    # shellcheck disable=SC2086 # "<unit> [<instance>]"
    unit_command $unit
  else
    case $1 in
      artifacts) printf '%s\n' python3 -m http.server --bind 127.0.0.1 \
        --directory "$ARTIFACT_DIR" "$ARTIFACT_PORT" ;;
      # Scales web from Nomad's own allocation stats (docs/autoscaling.md).
      autoscaler) printf '%s\n' "$COUNTER_CACHE/bin/nomad-autoscaler" agent \
        -config="$COUNTER_ROOT/nomad/autoscaler.hcl" ;;
      *) die "unknown component $1" ;;
    esac
  fi
}

# link_configs: builds $COUNTER_STATE/etc, the local /etc/counter, from links
# to the repo's files, and puts the Consul role check on PATH. Idempotent.
link_configs() {
  mkdir -p "$ETC_DIR/consul.d" "$ETC_DIR/nomad.d" "$ETC_DIR/redis" "$COUNTER_CACHE/bin"
  ln -sfn "$COUNTER_ROOT/consul/local.hcl" "$ETC_DIR/consul.d/local.hcl"
  ln -sfn "$COUNTER_ROOT/consul/redis-local.hcl" "$ETC_DIR/consul.d/redis-local.hcl"
  ln -sfn "$COUNTER_ROOT/nomad/local.hcl" "$ETC_DIR/nomad.d/local.hcl"
  local f
  for f in primary replica sentinel; do
    ln -sfn "$COUNTER_ROOT/redis/$f.conf" "$ETC_DIR/redis/$f.conf"
  done
  # Consul runs the check by name (consul/redis-local.hcl); on real hosts it
  # is installed as /usr/local/bin/redis-role-check.
  ln -sfn "$COUNTER_ROOT/consul/redis-role-check" "$COUNTER_CACHE/bin/redis-role-check"
  # The Redis and Sentinel units build their runtime config with it.
  ln -sfn "$COUNTER_ROOT/redis/counter-redis-config" "$COUNTER_CACHE/bin/counter-redis-config"
}

# proc_field <pid> <n>: field n of /proc/<pid>/stat (3 state, 22 start time).
proc_field() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # Fields after "pid (comm) "; comm may contain spaces.
  read -ra fields <<<"${stat##*) }"
  echo "${fields[$2 - 3]}"
}

# proc_start_time <pid>: when the process started, which tells a PID file's
# process from a later one that reused its PID.
proc_start_time() { proc_field "$1" 22; }

# component_pid <name>: prints the PID of a running component started by us.
component_pid() {
  local file=$RUN_DIR/$1.pid pid started
  [[ -f $file ]] || return 1
  read -r pid started <"$file" || return 1
  [[ -n $pid && $(proc_start_time "$pid") == "$started" ]] || return 1
  echo "$pid"
}

# port_owner <port>: describes the process listening on a TCP port; fails if none.
port_owner() {
  local line
  line=$(ss -Hltnp "sport = :$1" 2>/dev/null | head -1)
  [[ -n $line ]] || return 1
  if [[ $line =~ \(\(\"([^\"]+)\",pid=([0-9]+) ]]; then
    echo "${BASH_REMATCH[1]} (pid ${BASH_REMATCH[2]})"
  else
    echo "a process not visible to $(id -un) (see: sudo ss -ltnp 'sport = :$1')"
  fi
}

# require_ports_free <port...>: dies naming the first port already taken.
require_ports_free() {
  local port owner
  for port in "$@"; do
    if owner=$(port_owner "$port"); then
      die "port $port is in use by $owner; stop it or run scripts/down"
    fi
  done
}

# start_component <name>: starts it in the background unless already running.
start_component() {
  local name=$1 pid unit words cmd=()
  if pid=$(component_pid "$name"); then
    log "$name: already running (pid $pid)"
    return
  fi
  # shellcheck disable=SC2046 # a list of port numbers
  require_ports_free $(component_ports "$name")
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$DATA_DIR"
  if unit=$(component_unit "$name"); then
    # shellcheck disable=SC2086 # "<unit> [<instance>]"
    unit_run_pre $unit
  fi
  words=$(component_command "$name") || exit 1
  mapfile -t cmd <<<"$words"
  # setsid: the process outlives this script and ignores its Ctrl-C.
  (cd "$COUNTER_STATE" && exec setsid "${cmd[@]}" </dev/null >>"$LOG_DIR/$name.log" 2>&1) &
  pid=$!
  echo "$pid $(proc_start_time "$pid")" >"$RUN_DIR/$name.pid"
  log "$name: started (pid $pid, log $LOG_DIR/$name.log)"
}

# wait_component <name> <seconds>: waits until it answers; on early exit or
# timeout shows the end of its log.
wait_component() {
  local name=$1 timeout=$2 deadline=$((SECONDS + $2))
  until component_ready "$name"; do
    if ! component_pid "$name" >/dev/null; then
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited during startup; log: $LOG_DIR/$name.log"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      die "$name not ready after ${timeout}s; log: $LOG_DIR/$name.log"
    fi
    sleep 0.2
  done
  log "$name: ready"
}

# stop_pid <label> <pid> <signal> <seconds>: signals a process and waits for
# it to exit, killing it when it outstays the timeout.
stop_pid() {
  local label=$1 pid=$2 sig=$3 deadline=$((SECONDS + $4))
  kill -s "${sig#SIG}" "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie has exited; only its parent's wait is missing.
    [[ $(proc_field "$pid" 3) == Z ]] && return 0
    if ((SECONDS >= deadline)); then
      warn "$label (pid $pid) ignored $sig for ${4}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      return 0
    fi
    sleep 0.2
  done
}

# descendants <pid>: "<pid> <start time>" of every process below <pid>.
descendants() {
  local root=$1 proc pid ppid frontier=("$1") next found
  declare -A parent=()
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    ppid=$(proc_field "$pid" 4) && parent[$pid]=$ppid
  done
  while ((${#frontier[@]})); do
    next=()
    for pid in "${!parent[@]}"; do
      for found in "${frontier[@]}"; do
        if [[ ${parent[$pid]} == "$found" && $pid != "$root" ]]; then
          echo "$pid $(proc_start_time "$pid")"
          next+=("$pid")
        fi
      done
    done
    frontier=("${next[@]}")
  done
}

# stop_component <name>: stops it with its unit's KillSignal, if it runs, then
# whatever it started that outlived it (Nomad's executors, log shippers and
# tasks: nomad.service keeps them across agent restarts, scripts/down does
# not).
stop_component() {
  local name=$1 pid unit sig=SIGTERM children child started
  if pid=$(component_pid "$name"); then
    if unit=$(component_unit "$name"); then
      sig=$(unit_kill_signal "${unit%% *}")
    fi
    children=$(descendants "$pid")
    log "$name: stopping (pid $pid, $sig)"
    stop_pid "$name" "$pid" "$sig" 30
    while read -r child started; do
      [[ -n $child && $(proc_start_time "$child") == "$started" ]] || continue
      log "$name: stopping its leftover $(readlink "/proc/$child/exe" 2>/dev/null) (pid $child)"
      stop_pid "$name child" "$child" SIGTERM 15
    done <<<"$children"
  fi
  rm -f "$RUN_DIR/$name.pid"
}
