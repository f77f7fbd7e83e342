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

# venv <name> <requirements file>: a Python venv in the cache with the pinned
# packages of the file (and of the files it includes with -r), keyed by their
# hash so a change builds a fresh one; prints its directory.
venv() {
  local name=$1 reqs=$2 sum dir included
  mapfile -t included < <(sed -n "s#^-r #$(dirname "$reqs")/#p" "$reqs")
  sum=$(cat "$reqs" "${included[@]}" | sha256sum)
  dir=$COUNTER_CACHE/tools/$name/${sum:0:12}
  if [[ ! -x $dir/bin/python || ! -f $dir/.complete ]]; then
    need_cmd python3 "install Python 3 (with the venv module)"
    log "$name venv: installing ${reqs#"$COUNTER_ROOT/"} into $dir (once)"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$reqs" >&2
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# ops_python: the python the ops tools (scripts/counterops) run with.
ops_python() { echo "$(venv ops "$COUNTER_ROOT/scripts/counterops/requirements.txt")/bin/python"; }
# test_python: the tests' (pytest, selenium, ruff, and the ops packages).
test_python() { echo "$(venv test "$COUNTER_ROOT/tests/requirements.txt")/bin/python"; }

# ops <module> <args...>: runs counterops.<module> with the ops venv.
ops() {
  local python
  python=$(ops_python)
  PYTHONPATH=$COUNTER_ROOT/scripts "$python" -m "counterops.$1" "${@:2}"
}

# run_ops <module> <args...>: replaces this shell with counterops.<module>.
run_ops() {
  local python
  python=$(ops_python)
  PYTHONPATH=$COUNTER_ROOT/scripts exec "$python" -m "counterops.$1" "${@:2}"
}

# timed <description> <command...>: runs one step and says how long it took
# (when it took a second or more).
timed() {
  local what=$1 started=$SECONDS
  shift
  "$@"
  ((SECONDS - started < 1)) || log "$what: done in $((SECONDS - started))s"
}

# phase <description> <command...>: timed, with a progress line before it.
phase() {
  log "$1"
  timed "$@"
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
