# nginx for scripts/bench: the proxy-hop baseline. One worker process, no
# access log, HTTP/1.1 with a pool of keep-alive connections to the backend:
# what forwarding a request costs on this machine with a proxy built for
# little else. Sourced by scripts/bench.
# shellcheck shell=bash

need_nginx() {
  NGINX=$(command -v nginx || true)
  [[ -n $NGINX ]] || NGINX=/usr/sbin/nginx
  [[ -x $NGINX ]] || die "no nginx: run scripts/install (Debian package nginx)"
}

# start_nginx <name> <port> <backend port>: nginx on 127.0.0.1:<port> proxying
# to 127.0.0.1:<backend port>; returns once it answers. The PID in STARTED_PID
# is its single worker's (the one that serves; the master only supervises),
# so CPU per request is the worker's.
start_nginx() {
  local name=$1 port=$2 backend=$3 dir=$WORK/$1 master worker
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
  worker_connections 1024;
}
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream backend {
    server 127.0.0.1:$backend;
    # Idle connections kept open to the backend, per worker: above the
    # bench's 32 concurrent requests, so none is opened per request.
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://backend;
      # Keep-alive to the backend needs HTTP/1.1 and no "Connection: close".
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  start "$name" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e stderr
  master=$STARTED_PID
  wait_until 20 "$name to answer on :$port" curl -sf -o /dev/null "http://127.0.0.1:$port/"
  alive "$master" "$name"
  worker=$(pgrep -P "$master" | head -n 1)
  [[ -n $worker ]] || die "$name: no worker process under pid $master"
  STARTED_PID=$worker
}
