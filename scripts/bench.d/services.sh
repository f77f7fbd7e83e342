# scripts/bench services: each service against a baseline on its own.
#   web GET /      vs the constant server (the services' own hyper server answering 42)
#   web-inc /inc   vs redis-benchmark INCR, no pipelining
# Ports BASE..BASE+4. Sourced by scripts/bench.
# shellcheck shell=bash

bench_services() {
  local primary=$BENCH_BASE_PORT replica=$((BENCH_BASE_PORT + 1))
  local constant_port=$((BENCH_BASE_PORT + 2)) web_port=$((BENCH_BASE_PORT + 3)) inc_port=$((BENCH_BASE_PORT + 4))
  claim_ports "$BENCH_BASE_PORT" 5
  local bin=$COUNTER_ROOT/target/release
  start_redis "$primary" "$replica"

  local redis_flags=(--redis-primary "127.0.0.1:$primary" --redis-replicas "127.0.0.1:$replica")
  start constant "$bin/examples/constant" "127.0.0.1:$constant_port"
  wait_until 20 "the constant server on :$constant_port" curl -sf -o /dev/null "http://127.0.0.1:$constant_port/"
  local web_pid inc_pid
  start_service web "$web_port" "$bin/web" "${redis_flags[@]}"
  web_pid=$STARTED_PID
  start_service web-inc "$inc_port" "$bin/web-inc" "${redis_flags[@]}"
  inc_pid=$STARTED_PID
  wait_until 20 "web-inc to be ready" curl -sf -o /dev/null "http://127.0.0.1:$inc_port/health/ready"

  # Baseline and service alternate, so drift in the machine's load hits both.
  for CURRENT_ROUND in $(seq "$ROUNDS"); do
    log "services round $CURRENT_ROUND/$ROUNDS: constant GET /, web GET /, redis INCR, web-inc /inc" \
      "(-c$CONNECTIONS, ${DURATION}s each)"
    wrk_run constant_get "http://127.0.0.1:$constant_port/"
    wrk_run web_get "http://127.0.0.1:$web_port/"
    redis_incr_run redis_incr "$primary"
    wrk_run web_inc "http://127.0.0.1:$inc_port/inc"
  done

  record_value rss_mb.web "$(peak_rss_mb "$web_pid")"
  record_value rss_mb.web_inc "$(peak_rss_mb "$inc_pid")"
  record_value increments.acknowledged "$(acknowledged "$inc_port")"
  record_value increments.final_count "$(curl -s "http://127.0.0.1:$inc_port/inc")"
}

# acknowledged <port>: increments a service acknowledged (its batch sizes, summed).
acknowledged() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^counter_write_batch_size_sum/ { n += $2 } END { printf "%d", n }'
}
