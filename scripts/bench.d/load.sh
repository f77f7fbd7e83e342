# Load generators of scripts/bench and how their results are recorded.
# Sourced by scripts/bench.
#   wrk      closed loop: as fast as CONNECTIONS connections go (throughput)
#   loadgen  open loop at a fixed rate (bench/loadgen): latency at a given load
#   redis-benchmark  INCR without pipelining, the raw store's ceiling
# shellcheck shell=bash

RECORDS=""    # $WORK/records: one line per measured run or figure, read by report.py
CURRENT_ROUND=0       # the current round, recorded with every run
LOG_SINKS=()  # logs emptied after every run (Traefik's access log grows ~0.5 KB a request)
RESULT=""     # the last run's "key=value ..." line
CPU_WATCH=()  # name=pid: the next wrk run also records each one's CPU per request (watch_cpu)

# record <name> <key=value...>: one measured run of this round.
record() { printf 'run %s %s %s\n' "$1" "$CURRENT_ROUND" "${*:2}" >>"$RECORDS"; }
# record_value <key> <value>: one figure (peak RSS, counts, settings).
record_value() { printf 'value %s %s\n' "$1" "$2" >>"$RECORDS"; }
# field <key>: a value of the last RESULT.
field() {
  local v=${RESULT#*"$1"=}
  printf '%s' "${v%% *}"
}

trim_logs() {
  local f
  for f in "${LOG_SINKS[@]}"; do : >"$f"; done
}

# watch_cpu <name=pid...>: the next wrk run records the CPU each of these
# processes spent per request, as cpu_<name> (microseconds).
watch_cpu() { CPU_WATCH=("$@"); }

# parse_wrk <name> <output file> <url>: RESULT from wrk.lua's line; dies on a non-2xx answer.
parse_wrk() {
  RESULT=$(sed -n 's/^RESULT //p' "$2")
  [[ -n $RESULT ]] || { cat "$2" >&2; die "$1: no result from wrk on $3"; }
  [[ $(field non2xx) == 0 ]] || die "$1: non-2xx answers from $3 ($RESULT)"
  [[ $(field socket_errors) == 0 ]] || warn "$1: socket errors on $3 ($RESULT)"
}

# wrk_run <name> <url>: one closed-loop run of DURATION s at CONNECTIONS; with
# CPU_WATCH set, also the CPU each watched process spent per request.
# BENCH_MIX=N in the environment sends every Nth request to /inc (wrk.lua).
wrk_run() {
  local out=$WORK/wrk.out before=() i w spent
  for w in "${CPU_WATCH[@]}"; do before+=("$(cpu_ms "${w#*=}")"); done
  timeout $((DURATION + 30)) wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$BENCH_D/wrk.lua" "$2" >"$out" 2>&1 ||
    { cat "$out" >&2; die "$1: wrk failed on $2"; }
  parse_wrk "$1" "$out" "$2"
  for i in "${!CPU_WATCH[@]}"; do
    w=${CPU_WATCH[i]}
    spent=$(($(cpu_ms "${w#*=}") - before[i]))
    RESULT+=" cpu_${w%%=*}=$(awk -v ms="$spent" -v rps="$(field rps)" -v d="$DURATION" \
      'BEGIN { printf "%.1f", ms * 1000 / (rps * d) }')"
  done
  CPU_WATCH=()
  record "$1" "$RESULT"
  trim_logs
}

# half <req/s>: half of it, as a whole rate.
half() { awk -v r="$1" 'BEGIN { printf "%d", r / 2 }'; }

# loadgen_run <name> <url> <rate>: one open-loop run of DURATION s at <rate> req/s.
loadgen_run() {
  local out=$WORK/loadgen.out
  timeout $((DURATION + 30)) "$LOADGEN" --rate "$3" --duration "$DURATION" --connections "$CONNECTIONS" "$2" \
    >"$out" 2>&1 || { cat "$out" >&2; die "$1: loadgen failed or had errors on $2"; }
  RESULT="$(cat "$out") rate=$3"
  record "$1" "$RESULT"
  trim_logs
}

# redis_incr_run <name> <port>: redis-benchmark INCR, no pipelining, CONNECTIONS clients.
redis_incr_run() {
  local rps
  rps=$(timeout $((DURATION + 30)) redis-benchmark -p "$2" -c "$CONNECTIONS" -n $((DURATION * 40000)) -t incr -P 1 -q |
    awk -F'[: ]+' '/INCR/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }')
  [[ -n $rps ]] || die "could not read redis-benchmark's result"
  record "$1" "rps=$rps"
}

# flood_run <name> <get url> <inc url>: wrk floods GET / (closed loop) while
# loadgen sends /inc at FLOOD_INC_RATE; records <name>_get and <name>_inc.
flood_run() {
  local log=$WORK/flood.log flood_pid
  : >"$log"
  start flood timeout $((DURATION + 32)) wrk -t2 -c"$CONNECTIONS" -d"$((DURATION + 2))s" -s "$BENCH_D/wrk.lua" "$2"
  flood_pid=$STARTED_PID
  sleep 1
  loadgen_run "${1}_inc" "$3" "$FLOOD_INC_RATE"
  wait_started "$flood_pid" || die "$1: the GET flood (wrk) failed: $(cat "$log")"
  parse_wrk "${1}_get" "$log" "$2"
  record "${1}_get" "$RESULT"
}

# ensure_loadgen: builds bench/loadgen (its own small workspace) into target/.
ensure_loadgen() {
  LOADGEN=$COUNTER_ROOT/target/loadgen/release/loadgen
  log "building bench/loadgen (open-loop load generator)"
  cargo build --release --locked --quiet --manifest-path "$COUNTER_ROOT/bench/loadgen/Cargo.toml" \
    --target-dir "$COUNTER_ROOT/target/loadgen"
}
