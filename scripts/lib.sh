# Shared helpers for the project's scripts. Sourced, never run.
# shellcheck shell=bash

# Where everything built or downloaded lives: outside the repo, reused across runs.
: "${COUNTER_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/counter}"
# Runtime state of the local stack (data, logs, PID files).
: "${COUNTER_STATE:=$COUNTER_CACHE/local}"
COUNTER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export COUNTER_CACHE COUNTER_STATE COUNTER_ROOT
export PATH="$COUNTER_CACHE/bin:$PATH"

# shellcheck source=versions.env
. "$COUNTER_ROOT/scripts/versions.env"

# e2e_venv: the Python venv of tests/e2e (scripts/install --only e2e), keyed
# by its pinned requirements so a change builds a fresh one.
e2e_venv() {
  local sum
  sum=$(sha256sum "$COUNTER_ROOT/tests/e2e/requirements.txt")
  echo "$COUNTER_CACHE/tools/e2e-py/${sum:0:12}"
}

# A command that fails under `set -e` ends the script, without a word when
# its own message went to /dev/null: say which command and where. Only in
# the script's own shell: inside $(...) errexit is off, so a failure there
# ends nothing (and when it does, the line that used it is named here).
report_failed_command() {
  ((BASH_SUBSHELL == 0)) || return 0
  # shellcheck disable=SC2016 # the backquotes are printed, not run
  printf 'error: %s line %s: `%s` failed (exit %s)\n' \
    "${BASH_SOURCE[1]#"$COUNTER_ROOT/"}" "${BASH_LINENO[0]}" "$BASH_COMMAND" "$1" >&2
}
set -o errtrace
trap 'report_failed_command $?' ERR

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not found${2:+: $2}"
}

# wait_until <seconds> <description> <command...>: poll until the command succeeds.
wait_until() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- cluster secrets
# The deploy (scripts/deploy) generates a cluster's secrets into this 0700
# directory (files 0600; docs/deploy.md, "Security"); for the test machines it
# is ~/.cache/counter/cluster/secrets. Helpers for the scripts that talk to a
# cluster (scripts/chaos sets CLUSTER_SECRETS to its deployment's): they read
# the secrets from files and hand them to the tools through the environment
# or files, never on a command line.
: "${CLUSTER_SECRETS:=${CLUSTER_STATE:-$COUNTER_CACHE/cluster}/secrets}"

# cluster_redis_cli <redis-cli args...>: redis-cli as the cluster's `check`
# ACL user (ROLE, INFO, PING, GET counter), the password in REDISCLI_AUTH.
# Over TLS, verified against the cluster's CA, when the deployment has one.
cluster_redis_cli() {
  local tls=()
  [[ -r $CLUSTER_SECRETS/tls/ca.pem ]] && tls=(--tls --cacert "$CLUSTER_SECRETS/tls/ca.pem")
  if [[ -r $CLUSTER_SECRETS/redis-check.password ]]; then
    REDISCLI_AUTH=$(<"$CLUSTER_SECRETS/redis-check.password") \
      redis-cli --no-auth-warning "${tls[@]}" --user check "$@"
  else
    redis-cli "${tls[@]}" "$@"
  fi
}

# cluster_consul_curl <curl args...>: curl with the Consul management token in
# a header read from a file (-H @file), trusting the cluster's CA.
cluster_consul_curl() {
  local tls=()
  [[ -r $CLUSTER_SECRETS/tls/ca.pem ]] && tls=(--cacert "$CLUSTER_SECRETS/tls/ca.pem")
  if [[ -r $CLUSTER_SECRETS/consul-management.header ]]; then
    curl "${tls[@]}" -H "@$CLUSTER_SECRETS/consul-management.header" "$@"
  else
    curl "${tls[@]}" "$@"
  fi
}
