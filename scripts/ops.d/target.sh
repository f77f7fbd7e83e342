# Which Counter deployment scripts/status and scripts/logs look at: the local
# stack (scripts/up), or a deployed cluster given by its inventory (real hosts
# deployed with scripts/deploy, or the test machines of scripts/cluster,
# whose inventory is $COUNTER_CACHE/cluster/inventory.yml). Sourced, never run.
# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034

CLUSTER_INVENTORY=${CLUSTER_STATE:-$COUNTER_CACHE/cluster}/inventory.yml

# nomad_answers <addr>: succeeds when a Nomad agent answers there (HTTPS
# verified against NOMAD_CACERT when set).
nomad_answers() {
  curl -s -o /dev/null --max-time 2 ${NOMAD_CACERT:+--cacert "$NOMAD_CACERT"} "$1/v1/status/leader"
}

# inventory_servers <inventory>: the servers' addresses, one a line.
inventory_servers() {
  python3 "$COUNTER_ROOT/scripts/ops.d/inventory.py" "$1" json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("\n".join(d["hosts"][s]["addr"] for s in d["servers"]))'
}

# select_target <local|cluster|auto> [inventory]: sets TARGET, NOMAD_ADDR,
# CONSUL_HTTP_ADDR (with NOMAD_CACERT and CONSUL_CACERT for a cluster),
# GATEWAY_URL and SECRETS_DIR. A cluster is reached
# through the first of its servers whose Nomad answers, so the tools work
# with any one server down; its management tokens (from the deploy's state
# on this machine) are used unless NOMAD_TOKEN / CONSUL_HTTP_TOKEN are set.
# auto: the local stack when its Nomad answers, else the test cluster when
# it has an inventory.
select_target() {
  local want=$1 inventory=${2:-} server="" s
  if [[ -n $inventory ]]; then
    want=cluster
  elif [[ $want == auto ]]; then
    if nomad_answers http://127.0.0.1:4646 || [[ ! -r $CLUSTER_INVENTORY ]]; then
      want=local
    else
      want=cluster
    fi
  fi
  TARGET=$want
  SECRETS_DIR=""
  if [[ $want == local ]]; then
    export NOMAD_ADDR=http://127.0.0.1:4646 CONSUL_HTTP_ADDR=http://127.0.0.1:8500
    GATEWAY_URL=http://127.0.0.1:8080
    # The local stack's ACL tokens (scripts/up generates them), likewise
    # unless NOMAD_TOKEN / CONSUL_HTTP_TOKEN are set.
    SECRETS_DIR=${COUNTER_STATE:-$COUNTER_CACHE/local}/secrets
    select_tokens "$SECRETS_DIR"
    SECRETS_DIR=""
    return
  fi
  inventory=${inventory:-$CLUSTER_INVENTORY}
  [[ -r $inventory ]] || die "no inventory $inventory (scripts/cluster up, or --inventory FILE)"
  SECRETS_DIR=$(python3 "$COUNTER_ROOT/scripts/ops.d/inventory.py" "$inventory" state)/secrets
  # The cluster's APIs are HTTPS with certificates of its own CA.
  export NOMAD_CACERT=$SECRETS_DIR/tls/ca.pem CONSUL_CACERT=$SECRETS_DIR/tls/ca.pem
  for s in $(inventory_servers "$inventory"); do
    [[ -n $server ]] || server=$s
    if nomad_answers "https://$s:4646"; then
      server=$s
      break
    fi
  done
  export NOMAD_ADDR=https://$server:4646 CONSUL_HTTP_ADDR=https://$server:8501
  GATEWAY_URL=http://$server:8080
  select_tokens "$SECRETS_DIR"
}

# select_tokens <secrets dir>: exports NOMAD_TOKEN and CONSUL_HTTP_TOKEN_FILE
# from the management token files there, unless already set; the tokens go
# to the tools through the environment or a file, never a command line.
select_tokens() {
  if [[ -z ${NOMAD_TOKEN:-} && -r $1/nomad-management.token ]]; then
    NOMAD_TOKEN=$(<"$1/nomad-management.token")
    export NOMAD_TOKEN
  fi
  if [[ -z ${CONSUL_HTTP_TOKEN:-} && -z ${CONSUL_HTTP_TOKEN_FILE:-} && -r $1/consul-management.token ]]; then
    export CONSUL_HTTP_TOKEN_FILE=$1/consul-management.token
  fi
}
