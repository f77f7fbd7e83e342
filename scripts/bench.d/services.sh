# scripts/bench services: each service against a baseline on its own.
#   web GET /      vs the constant server (the services' own hyper server answering 42)
#   web-inc /inc   vs redis-benchmark INCR, no pipelining
#   Redis over TLS: web GET / and web-inc /inc with --redis-tls-ca against a
#   TLS-only primary + replica, vs the same services over plain TCP
# Ports BASE..BASE+4 and BASE+21..BASE+24 (TLS). Sourced by scripts/bench.
# shellcheck shell=bash

bench_services() {
  local primary=$BENCH_BASE_PORT replica=$((BENCH_BASE_PORT + 1))
  local constant_port=$((BENCH_BASE_PORT + 2)) web_port=$((BENCH_BASE_PORT + 3)) inc_port=$((BENCH_BASE_PORT + 4))
  local tls_primary=$((BENCH_BASE_PORT + 21)) tls_replica=$((BENCH_BASE_PORT + 22))
  local web_tls_port=$((BENCH_BASE_PORT + 23)) inc_tls_port=$((BENCH_BASE_PORT + 24))
  claim_ports "$BENCH_BASE_PORT" 5
  claim_ports "$tls_primary" 4
  local bin=$COUNTER_ROOT/target/release
  start_redis "$primary" "$replica"
  make_bench_pki "$WORK/pki"
  start_redis_tls "$tls_primary" "$tls_replica" "$WORK/pki"

  local redis_flags=(--redis-primary "127.0.0.1:$primary" --redis-replicas "127.0.0.1:$replica")
  start constant "$bin/examples/constant" "127.0.0.1:$constant_port"
  wait_until 20 "the constant server on :$constant_port" curl -sf -o /dev/null "http://127.0.0.1:$constant_port/"
  local web_pid inc_pid
  start_service web "$web_port" "$bin/web" "${redis_flags[@]}"
  web_pid=$STARTED_PID
  start_service web-inc "$inc_port" "$bin/web-inc" "${redis_flags[@]}"
  inc_pid=$STARTED_PID
  wait_until 20 "web-inc to be ready" curl -sf -o /dev/null "http://127.0.0.1:$inc_port/health/ready"
  local tls_flags=(--redis-primary "127.0.0.1:$tls_primary" --redis-replicas "127.0.0.1:$tls_replica"
    --redis-tls-ca "$WORK/pki/ca.pem")
  local web_tls_pid inc_tls_pid
  start_service web-tls "$web_tls_port" "$bin/web" "${tls_flags[@]}"
  web_tls_pid=$STARTED_PID
  start_service web-inc-tls "$inc_tls_port" "$bin/web-inc" "${tls_flags[@]}"
  inc_tls_pid=$STARTED_PID
  wait_until 20 "web-inc (Redis over TLS) to be ready" \
    curl -sf -o /dev/null "http://127.0.0.1:$inc_tls_port/health/ready"

  # Baseline and service alternate, so drift in the machine's load hits both.
  for CURRENT_ROUND in $(seq "$ROUNDS"); do
    log "services round $CURRENT_ROUND/$ROUNDS: constant GET /, web GET / (plain, Redis TLS), redis INCR," \
      "web-inc /inc (plain, Redis TLS) (-c$CONNECTIONS, ${DURATION}s each)"
    wrk_run constant_get "http://127.0.0.1:$constant_port/"
    wrk_run web_get "http://127.0.0.1:$web_port/"
    wrk_run web_get_tls "http://127.0.0.1:$web_tls_port/"
    redis_incr_run redis_incr "$primary"
    wrk_run web_inc "http://127.0.0.1:$inc_port/inc"
    wrk_run web_inc_tls "http://127.0.0.1:$inc_tls_port/inc"
  done

  record_value rss_mb.web "$(peak_rss_mb "$web_pid")"
  record_value rss_mb.web_inc "$(peak_rss_mb "$inc_pid")"
  record_value increments.acknowledged "$(acknowledged "$inc_port")"
  record_value increments.final_count "$(curl -s "http://127.0.0.1:$inc_port/inc")"
  record_value rss_mb.web_tls "$(peak_rss_mb "$web_tls_pid")"
  record_value rss_mb.web_inc_tls "$(peak_rss_mb "$inc_tls_pid")"
  record_value increments_tls.acknowledged "$(acknowledged "$inc_tls_port")"
  record_value increments_tls.final_count "$(curl -s "http://127.0.0.1:$inc_tls_port/inc")"
}

# make_bench_pki <dir>: a throwaway CA and a server certificate it signed for
# IP 127.0.0.1 (as the cluster's Redis certificates carry the host's IP), ECDSA P-256.
make_bench_pki() {
  need_cmd openssl "install openssl (Debian package openssl)"
  local dir=$1
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj "/CN=Counter bench CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=redis bench" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial 1 -days 1 \
    -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
}

# start_redis_tls <primary port> <replica port> <pki dir>: as start_redis, but
# TLS only (port 0, tls-port), clients without a certificate allowed
# (tls-auth-clients optional, as in the cluster), replication over TLS.
start_redis_tls() {
  local pki=$3
  local tls=(--port 0 --tls-cert-file "$pki/server.pem" --tls-key-file "$pki/server.key"
    --tls-ca-cert-file "$pki/ca.pem" --tls-auth-clients optional)
  log "starting redis primary :$1 and replica :$2, TLS only"
  mkdir -p "$WORK/tls-$1" "$WORK/tls-$2"
  start "redis-tls-$1" redis-server --tls-port "$1" "${tls[@]}" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK/tls-$1"
  start "redis-tls-$2" redis-server --tls-port "$2" "${tls[@]}" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK/tls-$2" --replicaof 127.0.0.1 "$1" --tls-replication yes
  wait_until 20 "the TLS replica to sync" \
    sh -c "redis-cli --tls --cacert $pki/ca.pem -p $2 info replication | grep -q master_link_status:up"
}

# acknowledged <port>: increments a service acknowledged (its batch sizes, summed).
acknowledged() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^counter_write_batch_size_sum/ { n += $2 } END { printf "%d", n }'
}
