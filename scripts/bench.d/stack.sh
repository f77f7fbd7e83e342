# scripts/bench stack: the services behind the gateway, against the gateway's
# own ceiling. Sourced by scripts/bench. Ports BASE+5..BASE+20.
#
#   Traefik ceiling    Traefik (project config, file provider) in front of the
#                      constant server
#   proxy-hop baseline bare Traefik (defaults, fast proxy, no logs, no metrics)
#                      and nginx (one worker, keep-alive upstream) in front of
#                      the same constant server
#   through Traefik    web GET /, web-inc /inc, a 90/10 GET//inc mix; web x1, x2, x3
#   direct             the constant server, web GET /, web-inc /inc
#   latency            open loop (bench/loadgen) at half of this round's measured
#                      maximum through Traefik, GET / and /inc; at the same rate
#                      GET / direct, and bare Traefik and nginx in front of the
#                      constant server
#   the split claim    /inc at FLOOD_INC_RATE while wrk floods GET /: web +
#                      web-inc (split) vs one process with --role all, direct
# shellcheck shell=bash

bench_stack() {
  need_traefik
  need_nginx
  local b=$((BENCH_BASE_PORT + 5))
  local primary=$b replica=$((b + 1)) constant=$((b + 2)) web1=$((b + 3)) web2=$((b + 4)) web3=$((b + 5))
  local inc=$((b + 6)) all=$((b + 7))
  # Each Traefik: admin, then entrypoints web (web x1), web2, web3 (x2, x3), ceiling (the constant server).
  local d_admin=$((b + 8)) d_web=$((b + 9)) d_web2=$((b + 10)) d_web3=$((b + 11)) d_ceiling=$((b + 12))
  local bare_admin=$((b + 13)) bare_ceiling=$((b + 14)) nginx_port=$((b + 15))
  claim_ports "$b" 16
  local bin=$COUNTER_ROOT/target/release
  start_redis "$primary" "$replica"
  local replica_pid=$STARTED_PID

  local redis_flags=(--redis-primary "127.0.0.1:$primary" --redis-replicas "127.0.0.1:$replica")
  start constant-s "$bin/examples/constant" "127.0.0.1:$constant"
  local constant_pid=$STARTED_PID
  wait_until 20 "the constant server on :$constant" curl -sf -o /dev/null "http://127.0.0.1:$constant/"
  local web_pids=() p inc_pid all_pid d_pid bare_pid nginx_pid
  for p in "$web1" "$web2" "$web3"; do
    start_service "web-$p" "$p" "$bin/web" "${redis_flags[@]}"
    web_pids+=("$STARTED_PID")
  done
  start_service web-inc-s "$inc" "$bin/web-inc" "${redis_flags[@]}"
  inc_pid=$STARTED_PID
  # The same code with both routes in one process (the hidden --role all).
  start_service web-all "$all" "$bin/web" --role all "${redis_flags[@]}"
  all_pid=$STARTED_PID
  wait_until 20 "web-inc to be ready" curl -sf -o /dev/null "http://127.0.0.1:$inc/health/ready"
  wait_until 20 "web --role all to be ready" curl -sf -o /dev/null "http://127.0.0.1:$all/health/ready"

  local routes=(--backend "web/web=$web1" --backend "web/web-inc=$inc" --backend "ceiling/web=$constant"
    --backend "ceiling/web-inc=$constant")
  log "starting Traefik with the project's configuration, bare Traefik, nginx"
  start_traefik traefik-default "$d_admin" "" --entrypoint "web=$d_web" --entrypoint "web2=$d_web2" \
    --entrypoint "web3=$d_web3" --entrypoint "ceiling=$d_ceiling" "${routes[@]}" \
    --backend "web2/web=$web1,$web2" --backend "web2/web-inc=$inc" \
    --backend "web3/web=$web1,$web2,$web3" --backend "web3/web-inc=$inc"
  d_pid=$STARTED_PID
  start_traefik traefik-bare "$bare_admin" bare --entrypoint "ceiling=$bare_ceiling" --backend "ceiling/web=$constant"
  bare_pid=$STARTED_PID
  start_nginx nginx "$nginx_port" "$constant"
  nginx_pid=$STARTED_PID
  record_value settings.flood_inc_rate "$FLOOD_INC_RATE"

  local url=http://127.0.0.1 max
  for CURRENT_ROUND in $(seq "$ROUNDS"); do
    log "stack round $CURRENT_ROUND/$ROUNDS: ceilings, direct, through Traefik, scaling, latency, flood" \
      "(-c$CONNECTIONS, ${DURATION}s each)"
    # CPU per request of each process on the path, where the time goes.
    watch_cpu "traefik=$d_pid" "backend=$constant_pid"
    wrk_run gw_ceiling_default "$url:$d_ceiling/"
    watch_cpu "backend=$constant_pid"
    wrk_run direct_constant "$url:$constant/"
    watch_cpu "traefik=$bare_pid" "backend=$constant_pid"
    wrk_run gw_ceiling_bare "$url:$bare_ceiling/"
    watch_cpu "nginx=$nginx_pid" "backend=$constant_pid"
    wrk_run gw_ceiling_nginx "$url:$nginx_port/"
    watch_cpu "traefik=$d_pid" "backend=${web_pids[0]}" "replica=$replica_pid"
    wrk_run gw_web_get "$url:$d_web/"
    max=$(field rps)
    watch_cpu "backend=${web_pids[0]}" "replica=$replica_pid"
    wrk_run direct_web_get "$url:$web1/"
    loadgen_run lat_gw_web_get "$url:$d_web/" "$(half "$max")"
    # The same rate to web directly: what of the latency is the gateway's.
    loadgen_run lat_direct_web_get "$url:$web1/" "$(half "$max")"
    # And through the two proxy-hop baselines to the constant server: what of
    # the tail any proxy hop on this machine adds, whatever is behind it.
    loadgen_run lat_bare_constant "$url:$bare_ceiling/" "$(half "$max")"
    loadgen_run lat_nginx_constant "$url:$nginx_port/" "$(half "$max")"
    wrk_run gw_web_get_x2 "$url:$d_web2/"
    wrk_run gw_web_get_x3 "$url:$d_web3/"
    wrk_run gw_web_inc "$url:$d_web/inc"
    max=$(field rps)
    wrk_run direct_web_inc "$url:$inc/inc"
    loadgen_run lat_gw_web_inc "$url:$d_web/inc" "$(half "$max")"
    BENCH_MIX=10 wrk_run gw_mix "$url:$d_web/"
    flood_run flood_split "$url:$web1/" "$url:$inc/inc"
    flood_run flood_all "$url:$all/" "$url:$all/inc"
  done

  local rss=()
  for p in "${web_pids[@]}"; do rss+=("$(peak_rss_mb "$p")"); done
  record_value rss_mb.stack_web_max "$(printf '%s\n' "${rss[@]}" | sort -n | tail -n 1)"
  record_value rss_mb.stack_web_inc "$(peak_rss_mb "$inc_pid")"
  record_value rss_mb.web_role_all "$(peak_rss_mb "$all_pid")"
  record_value rss_mb.traefik_default "$(peak_rss_mb "$d_pid")"
  record_value rss_mb.traefik_bare "$(peak_rss_mb "$bare_pid")"
  record_value rss_mb.nginx_worker "$(peak_rss_mb "$nginx_pid")"
  record_value increments_stack.acknowledged $(($(acknowledged "$inc") + $(acknowledged "$all")))
  record_value increments_stack.final_count "$(curl -s "$url:$inc/inc")"
}
