#!/usr/bin/env bash
# Runs the three-node Longshore fleet of deploy/README.md on this machine, for trying it out:
# three Longshore processes sharing deploy/fleet.config.json, and HAProxy with deploy/haproxy/haproxy.cfg.
#
#   deploy/fleet-example.sh start    build if needed, start the nodes and HAProxy, wait until all are up
#   deploy/fleet-example.sh stop     SIGTERM everything it started (by the PIDs it recorded), wait for exit
#   deploy/fleet-example.sh status   which processes are running, and HAProxy's view of the nodes
#
# Then: docker pull 127.0.0.1:5000/library/alpine:3.19 (with 127.0.0.1:5000 as an insecure registry),
# the stats page at http://127.0.0.1:8404/stats. Settings (environment):
#   LONGSHORE_FLEET_DIR  data dirs, logs and PID files   default ./fleet-example
#   FLEET_FRONT          HAProxy's address                default 127.0.0.1:5000
#   FLEET_NODE_PORTS     the three nodes' ports           default "5001 5002 5003"
#   LONGSHORE_STATS      HAProxy's stats and metrics      default 127.0.0.1:8404
# Needs: node (>= 20), haproxy (Debian package haproxy), curl.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
DIR="$(mkdir -p "${LONGSHORE_FLEET_DIR:-./fleet-example}" && cd "${LONGSHORE_FLEET_DIR:-./fleet-example}" && pwd)"
FRONT="${FLEET_FRONT:-127.0.0.1:5000}"
read -r -a PORTS <<<"${FLEET_NODE_PORTS:-5001 5002 5003}"
STATS="${LONGSHORE_STATS:-127.0.0.1:8404}"
export PATH="$PATH:/usr/sbin:/sbin"

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "gave up waiting for $what (see $DIR/*.log)" >&2
  return 1
}

start() {
  command -v haproxy >/dev/null || { echo "haproxy not found: apt-get install haproxy" >&2; exit 1; }
  if [[ ! -f $ROOT/dist/main.js ]]; then
    echo "building Longshore (npm run build) ..."
    (cd "$ROOT" && npm run build --silent)
  fi
  for i in 1 2 3; do
    local pidfile="$DIR/node$i.pid" port=${PORTS[$((i - 1))]}
    if running "$pidfile"; then echo "node$i already running (pid $(cat "$pidfile"))"; continue; fi
    mkdir -p "$DIR/node$i"
    # Every node runs the same config file; only the listen address, data dir and name differ.
    LONGSHORE_LISTEN="127.0.0.1:$port" LONGSHORE_DATA_DIR="$DIR/node$i" LONGSHORE_NODE_NAME="node$i" \
      nohup node "$ROOT/dist/main.js" --config "$ROOT/deploy/fleet.config.json" >>"$DIR/node$i.log" 2>&1 &
    echo $! >"$pidfile"
    echo "node$i: pid $!, 127.0.0.1:$port, data $DIR/node$i"
  done
  for i in 1 2 3; do
    wait_for "node$i" curl -fsS "http://127.0.0.1:${PORTS[$((i - 1))]}/readyz"
  done
  if ! running "$DIR/haproxy.pid"; then
    LONGSHORE_FRONT="$FRONT" LONGSHORE_STATS="$STATS" \
    LONGSHORE_NODE1="127.0.0.1:${PORTS[0]}" LONGSHORE_NODE2="127.0.0.1:${PORTS[1]}" LONGSHORE_NODE3="127.0.0.1:${PORTS[2]}" \
      nohup haproxy -db -f "$ROOT/deploy/haproxy/haproxy.cfg" >>"$DIR/haproxy.log" 2>&1 &
    echo $! >"$DIR/haproxy.pid"
    echo "haproxy: pid $!, front $FRONT, stats http://$STATS/stats"
  fi
  wait_for "HAProxy" curl -fsS "http://$FRONT/v2/"
  echo "fleet up: pull through $FRONT"
}

stop() {
  local pids=()
  for name in haproxy node1 node2 node3; do
    local pidfile="$DIR/$name.pid"
    if running "$pidfile"; then
      kill -TERM "$(cat "$pidfile")"
      pids+=("$(cat "$pidfile"):$name")
    fi
  done
  for entry in "${pids[@]}"; do
    local pid=${entry%%:*}
    # A node drains for drainDelay (3 s) and finishes what it serves, within shutdownGrace (30 s).
    for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "${entry#*:} (pid $pid) still running" >&2; else echo "${entry#*:} stopped"; fi
  done
  rm -f "$DIR"/*.pid
}

status() {
  for name in haproxy node1 node2 node3; do
    if running "$DIR/$name.pid"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: not running"; fi
  done
  curl -fsS "http://$STATS/stats;csv" 2>/dev/null | awk -F, '$2 ~ /^node/ { print "  " $1 "/" $2 ": " $18 }' || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
