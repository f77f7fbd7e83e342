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
