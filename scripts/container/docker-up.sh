#!/usr/bin/env bash
# Start a Docker engine for `sam local invoke`, offline, if none answers yet.
#
# Installs docker.io when dockerd is missing, starts `dockerd` in the background (overlay2
# when the kernel allows it, else vfs), waits a bounded time for `docker info`, and records
# the pid in the state dir so docker-down.sh stops only the engine this script started.
# Idempotent: an engine that already answers is left alone (and not recorded as ours).
#
# Env: CONTAINER_STATE_DIR (default .ci/cache/container, git-ignored),
#      DOCKER_UP_TIMEOUT seconds (default 60), DOCKER_STORAGE_DRIVER (overlay2|vfs, default: try both).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE_DIR=${CONTAINER_STATE_DIR:-$ROOT/.ci/cache/container}
TIMEOUT=${DOCKER_UP_TIMEOUT:-60}
PIDFILE=$STATE_DIR/dockerd.pid
LOG=$STATE_DIR/dockerd.log
mkdir -p "$STATE_DIR"

log() { printf '[docker-up] %s\n' "$*" >&2; }
start=$SECONDS

if docker info >/dev/null 2>&1; then
  log "a Docker engine already answers; nothing to start"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    log "dockerd is missing and installing it needs root"; exit 1
  fi
  log "installing docker.io"
  t=$SECONDS
  # Unreachable third-party sources make `apt-get update` exit non-zero; Debian's own
  # lists still update, which is all docker.io needs.
  apt-get update -qq >/dev/null 2>&1 || log "apt-get update reported errors (continuing)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io iptables >/dev/null
  log "installed docker.io in $((SECONDS - t)) s"
fi

# A pid recorded by an earlier run whose engine still lives but does not answer: stop it
# (it is ours) before starting anew.
if [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  log "our earlier dockerd (pid $(cat "$PIDFILE")) does not answer; waiting for it"
  for _ in $(seq 1 "$TIMEOUT"); do
    docker info >/dev/null 2>&1 && { log "engine answers (pid $(cat "$PIDFILE"))"; exit 0; }
    sleep 1
  done
  log "stopping it"
  "$ROOT/scripts/container/docker-down.sh" || true
fi

wait_for_engine() {  # $1: pid
  local deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

drivers=${DOCKER_STORAGE_DRIVER:-overlay2 vfs}
for driver in $drivers; do
  log "starting dockerd --storage-driver=$driver"
  # setsid: the engine outlives this script and is not killed with the caller's process group.
  setsid dockerd --storage-driver="$driver" --data-root="${DOCKER_DATA_ROOT:-/var/lib/docker}" \
    >>"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  if wait_for_engine "$pid"; then
    echo "$driver" >"$STATE_DIR/dockerd.driver"
    log "engine up (pid $pid, storage $driver) in $((SECONDS - start)) s; log: $LOG"
    exit 0
  fi
  log "dockerd with $driver did not come up; see $LOG"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
done
log "no Docker engine could be started (last lines of $LOG follow)"
tail -n 20 "$LOG" >&2 || true
exit 1
