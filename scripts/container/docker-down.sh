#!/usr/bin/env bash
# Stop the Docker engine that docker-up.sh started, and nothing else.
# An engine that was already running before docker-up.sh (no pid recorded) is left alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE_DIR=${CONTAINER_STATE_DIR:-$ROOT/.ci/cache/container}
PIDFILE=$STATE_DIR/dockerd.pid
TIMEOUT=${DOCKER_DOWN_TIMEOUT:-30}

log() { printf '[docker-down] %s\n' "$*" >&2; }

if [[ ! -s $PIDFILE ]]; then
  log "no engine recorded as started by docker-up.sh; nothing to stop"
  exit 0
fi
pid=$(cat "$PIDFILE")
# Only signal the pid if it still is a dockerd (pids are reused).
if ! kill -0 "$pid" 2>/dev/null || [[ $(cat "/proc/$pid/comm" 2>/dev/null) != dockerd ]]; then
  log "recorded engine (pid $pid) is no longer running"
  rm -f "$PIDFILE"
  exit 0
fi
log "stopping dockerd (pid $pid)"
kill -TERM "$pid"
for _ in $(seq 1 $((TIMEOUT * 2))); do
  kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped"; exit 0; }
  sleep 0.5
done
log "dockerd did not stop in ${TIMEOUT}s; killing it"
kill -KILL "$pid" 2>/dev/null || true
rm -f "$PIDFILE"
