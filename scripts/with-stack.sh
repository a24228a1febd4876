#!/usr/bin/env bash
# Runs a command against a fresh local segcast stack, then stops the stack whatever happens.
#
#   scripts/with-stack.sh [--name NAME] [--] CMD [ARGS...]
#
# Starts `segcast-stack up` in the background, waits until its env file is written, exports that env
# (PUBSUB_EMULATOR_HOST, DATASTORE_EMULATOR_HOST, STORAGE_EMULATOR_HOST, BIGQUERY_EMULATOR_HOST, ...),
# runs CMD, and always runs `segcast-stack down` on exit, Ctrl-C or SIGTERM. Exits with CMD's status
# (130/143 when interrupted). SEGCAST_STACK_BIN overrides the segcast-stack binary (default: cargo-built).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${SEGCAST_STACK_NAME:-run-$$}"
if [ "${1:-}" = "--name" ]; then
  name="$2"
  shift 2
fi
if [ "${1:-}" = "--" ]; then shift; fi
if [ $# -eq 0 ]; then
  echo "usage: $0 [--name NAME] [--] CMD [ARGS...]" >&2
  exit 2
fi

bin="${SEGCAST_STACK_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --quiet -p devstack --bin segcast-stack)
  target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  bin="$target_dir/debug/segcast-stack"
fi

sup=""
cmd=""
rc=1
stack_dir="${SEGCAST_LOCAL_DIR:-$root/.local}/stacks/$name"
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$cmd" ]; then kill -TERM "$cmd" 2>/dev/null || true; fi
  if [ -n "$sup" ]; then
    "$bin" down --name "$name" >&2 || kill -TERM "$sup" 2>/dev/null || true
    wait "$sup" 2>/dev/null || true
  fi
  # Keep the stack's logs when something failed (or SEGCAST_KEEP_STACKS=1).
  if [ "$rc" -eq 0 ] && [ "${SEGCAST_KEEP_STACKS:-0}" != 1 ]; then
    rm -rf "$stack_dir"
  elif [ -d "$stack_dir/logs" ]; then
    echo "with-stack: the stack's logs are in $stack_dir/logs" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The stack's table goes to stderr, so CMD's stdout stays its own.
"$bin" up --name "$name" >&2 &
sup=$!
env_file="$("$bin" wait --name "$name" --pid "$sup" --timeout 300)"
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a

# CMD runs as a child we wait for, so a signal is handled at once (and forwarded) instead of after CMD.
set +e
"$@" <&0 &
cmd=$!
trap 'kill -INT "$cmd" 2>/dev/null; wait "$cmd"; rc=130; exit 130' INT
trap 'kill -TERM "$cmd" 2>/dev/null; wait "$cmd"; rc=143; exit 143' TERM
wait "$cmd"
rc=$?
cmd=""
exit "$rc"
