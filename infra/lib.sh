# Shared by infra/test and infra/demo: toolchain checks, the build directory and a stack that is
# stopped on exit only if this script started it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK="$ROOT/infra/local/stack"
# Outside the clone, so that fresh clones (and CI) reuse earlier builds; override freely.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quench/target}

require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool: see README.md, Requirements" >&2; exit 1; }
  done
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
