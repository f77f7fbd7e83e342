# Which Counter deployment scripts/status and scripts/logs look at: the local
# stack (scripts/up) or the cluster (scripts/cluster up). Sourced, never run.
# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034

CLUSTER_NET=198.18.0

# nomad_answers <addr>: succeeds when a Nomad agent answers there.
nomad_answers() { curl -s -o /dev/null --max-time 2 "$1/v1/status/leader"; }

# cluster_server: the first of the cluster's servers (m1..m3) whose Nomad
# answers, so the tools work with m1 down.
cluster_server() {
  local i
  for i in 11 12 13; do
    if nomad_answers "http://$CLUSTER_NET.$i:4646"; then
      echo "$CLUSTER_NET.$i"
      return
    fi
  done
  return 1
}

# select_target <local|cluster|auto>: sets TARGET, NOMAD_ADDR, CONSUL_HTTP_ADDR
# and GATEWAY_URL. auto: the local stack when its Nomad answers, else the
# cluster when one of its servers does. NOMAD_TOKEN and CONSUL_HTTP_TOKEN in
# the environment are passed on untouched.
select_target() {
  local want=$1 server
  if [[ $want == auto ]]; then
    if nomad_answers http://127.0.0.1:4646; then
      want=local
    elif cluster_server >/dev/null; then
      want=cluster
    else
      want=local
    fi
  fi
  TARGET=$want
  case $want in
    local)
      export NOMAD_ADDR=http://127.0.0.1:4646 CONSUL_HTTP_ADDR=http://127.0.0.1:8500
      GATEWAY_URL=http://127.0.0.1:8080
      ;;
    cluster)
      server=$(cluster_server) || server=$CLUSTER_NET.11
      export NOMAD_ADDR=http://$server:4646 CONSUL_HTTP_ADDR=http://$server:8500
      GATEWAY_URL=http://$server:8080
      ;;
  esac
}
