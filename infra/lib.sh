# Shared by infra/test and infra/demo: toolchain checks, the build directory, phases that say how
# long they took, and a stack that is stopped on exit only if this script started it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK="$ROOT/infra/local/stack"
# Outside the clone, so that fresh clones (and CI) reuse earlier builds; override freely.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quench/target}
STARTED=$SECONDS

require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool: see README.md, Requirements" >&2; exit 1; }
  done
}

# Runs one phase (a command or a function of this shell), named before and timed after, so that a
# slow run says where its time went. Called plainly (not in a condition), so that `set -e` still
# stops the script at the first failing command inside a function.
phase() {
  local name=$1 started=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "-- $name: $((SECONDS - started)) s (total $((SECONDS - STARTED)) s)"
}

# Brings the stack up; registers a trap that takes it down again unless it was already running.
stack_up() {
  if "$STACK" status >/dev/null 2>&1; then
    echo "stack: already running, left running afterwards" >&2
  else
    trap '"$STACK" down' EXIT
  fi
  "$STACK" up
  eval "$("$STACK" env)"
}

# The local classifier embeds its catalog and examples on its first start (about 30 s on 2 cores)
# and keeps the vectors beside the model in ~/.cache/quench; doing it while setting up, once per
# machine, keeps that wait out of the first worker start, the demo and the tests.
prepare_classifier() {
  "$1" prepare
}
