# Traefik for scripts/bench: the project's configuration (traefik/traefik.yml,
# the routers of the nomad jobs' tags, traefik/fallback.yml) with a file
# provider in place of Consul, written by traefik_config.py; and the
# `traefik` suite, which measures what each tuning knob does to its ceiling.
# Sourced by scripts/bench.
# shellcheck shell=bash

# start_traefik <name> <admin port> <knobs> <traefik_config.py args...>: a
# Traefik configured like the gateway, tuned by <knobs> (space-separated;
# NAME=VALUE in capitals is an environment variable such as GOGC, the rest are
# traefik_config.py knobs); returns once every entrypoint answers. PID in STARTED_PID.
start_traefik() {
  local name=$1 admin=$2 knobs env_vars=() knob_args=() ports=() k pid
  read -ra knobs <<<"$3"
  shift 3
  # The job's environment (GOGC...), as the gateway runs; a knob NAME=VALUE
  # comes later and wins. Not for bare Traefik, which is Traefik's defaults.
  [[ " ${knobs[*]} " == *" bare "* ]] || mapfile -t env_vars < <(job_env)
  for k in "${knobs[@]}"; do
    if [[ $k =~ ^[A-Z_]+= ]]; then env_vars+=("$k"); else knob_args+=(--knob "$k"); fi
  done
  local args=("$@")
  for k in "${!args[@]}"; do
    [[ ${args[k]} == --entrypoint ]] && ports+=("${args[k + 1]#*=}")
  done
  "$BENCH_PYTHON" "$BENCH_D/traefik_config.py" "$COUNTER_ROOT" "$WORK/$name" --admin "$admin" "${knob_args[@]}" "$@"
  start "$name" env "${env_vars[@]}" "$TRAEFIK" --configFile="$WORK/$name/traefik.yml"
  pid=$STARTED_PID
  LOG_SINKS+=("$WORK/$name.log")
  wait_until 20 "$name to answer /ping on :$admin" curl -sf -o /dev/null "http://127.0.0.1:$admin/ping"
  for k in "${ports[@]}"; do
    wait_until 20 "$name to route :$k" curl -sf -o /dev/null "http://127.0.0.1:$k/"
  done
  alive "$pid" "$name"
  STARTED_PID=$pid
}

# job_env: NAME=VALUE for each variable of the env block of nomad/traefik.nomad.hcl.
job_env() {
  awk '/^ *env \{/ { inside = 1; next } inside && /^ *\}/ { inside = 0 }
    inside && match($0, /^ *[A-Z_]+ *= *"[^"]*"/) { gsub(/[ "]/, ""); print }' \
    "$COUNTER_ROOT/nomad/traefik.nomad.hcl"
}

need_traefik() {
  TRAEFIK=$COUNTER_CACHE/bin/traefik
  [[ -x $TRAEFIK ]] || die "no Traefik at $TRAEFIK: run scripts/install"
}

# bench_traefik: Traefik in front of the constant server, the project's
# configuration vs each variant of TRAEFIK_VARIANTS, interleaved; the median
# of per-round ratios to the project's configuration is the knob's effect, on
# throughput and on Traefik's CPU time per request (steadier when the
# machine is shared: it does not depend on the CPU share Traefik gets); then
# each one's latency (p50, p99) at half the project configuration's maximum.
# Ports BASE+40 on (2 per variant).
bench_traefik() {
  need_traefik
  local variants=() pids=() base=$((BENCH_BASE_PORT + 40)) i
  IFS=',' read -ra variants <<<"$TRAEFIK_VARIANTS"
  variants=("" "${variants[@]}")
  claim_ports "$base" $((1 + 2 * ${#variants[@]}))
  start constant-t "$COUNTER_ROOT/target/release/examples/constant" "127.0.0.1:$base"
  wait_until 20 "the constant server on :$base" curl -sf -o /dev/null "http://127.0.0.1:$base/"
  for i in "${!variants[@]}"; do
    local spec=${variants[i]} label
    label=${spec:-project config}
    record_value "traefik_variant.$i" "$label"
    start_traefik "traefik-v$i" $((base + 1 + 2 * i)) "$spec" --entrypoint "web=$((base + 2 + 2 * i))" \
      --backend "web/web=$base" --backend "web/web-inc=$base"
    pids+=("$STARTED_PID")
  done
  local rate
  for CURRENT_ROUND in $(seq "$ROUNDS"); do
    log "traefik round $CURRENT_ROUND/$ROUNDS: ${#variants[@]} configurations in front of the constant server"
    for i in "${!variants[@]}"; do
      watch_cpu "traefik=${pids[i]}"
      wrk_run "traefik_v$i" "http://127.0.0.1:$((base + 2 + 2 * i))/"
      ((i == 0)) && rate=$(half "$(field rps)")
    done
    # Latency: every configuration at the same rate, half of the project
    # configuration's maximum in this round (open loop, bench/loadgen).
    for i in "${!variants[@]}"; do
      loadgen_run "traefik_lat_v$i" "http://127.0.0.1:$((base + 2 + 2 * i))/" "$rate"
    done
  done
  for i in "${!variants[@]}"; do record_value "rss_mb.traefik_v$i" "$(peak_rss_mb "${pids[i]}")"; done
}
