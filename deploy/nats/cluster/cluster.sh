#!/usr/bin/env bash
# Runs the local three-node jetsession cluster (n1.conf, n2.conf, n3.conf)
# with the real nats-server binary, everything on 127.0.0.1:
#
#   bash deploy/nats/cluster/cluster.sh start    # start, wait until healthy
#   bash deploy/nats/cluster/cluster.sh status   # pid, health, meta leader
#   bash deploy/nats/cluster/cluster.sh stop     # SIGTERM, wait for exit
#
# Pid files, logs and JetStream data live in deploy/nats/cluster/data.
# nats-server comes from PATH, else from $(go env GOPATH)/bin, where it is
# installed with go install when missing.
set -euo pipefail
cd "$(dirname "$0")"

NATS_VERSION=v2.15.2
NODES=(n1 n2 n3)
DATA=data
WAIT_SECONDS=${WAIT_SECONDS:-30}

# conf_value KEY NODE: the value of a top-level "KEY: value" line.
conf_value() {
	sed -n "s/^$1: *\([0-9]*\) *$/\1/p" "$2.conf"
}

find_server() {
	if command -v nats-server >/dev/null 2>&1; then
		command -v nats-server
		return
	fi
	local bin
	bin="$(go env GOPATH)/bin/nats-server"
	if [ ! -x "$bin" ]; then
		echo "installing nats-server $NATS_VERSION with go install" >&2
		go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
	fi
	echo "$bin"
}

# http_get PORT PATH: prints the status line and body of a local HTTP GET,
# with bash's /dev/tcp (no curl needed). Fails when nothing listens.
http_get() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
		cat <&3
	) 2>/dev/null
}

# healthy PORT PATH: the endpoint answers 200.
healthy() {
	http_get "$1" "$2" | head -n 1 | grep -q ' 200 '
}

pid_of() {
	[ -f "$DATA/$1.pid" ] && cat "$DATA/$1.pid"
}

# running NODE: its recorded process is alive and is a nats-server.
running() {
	local pid
	pid=$(pid_of "$1") || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [ -r "/proc/$pid/cmdline" ]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q nats-server
	fi
}

# wait_for DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_for() {
	local what=$1
	shift
	local deadline=$((SECONDS + WAIT_SECONDS))
	until "$@"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "timed out after ${WAIT_SECONDS}s waiting for $what" >&2
			return 1
		fi
		sleep 0.2
	done
}

all_healthy() {
	local node
	for node in "${NODES[@]}"; do
		healthy "$(conf_value http_port "$node")" /healthz || return 1
	done
}

start() {
	local bin node out
	bin=$(find_server)
	mkdir -p "$DATA"
	for node in "${NODES[@]}"; do
		# Refuse a broken config before anything starts.
		if ! out=$("$bin" -c "$node.conf" -t 2>&1); then
			echo "$out" >&2
			exit 1
		fi
	done
	for node in "${NODES[@]}"; do
		if running "$node"; then
			echo "$node already running (pid $(pid_of "$node"))"
			continue
		fi
		# The configs name relative store dirs (data/nX): run from here.
		nohup "$bin" -c "$node.conf" >>"$DATA/$node.log" 2>&1 &
		echo $! >"$DATA/$node.pid"
		echo "$node started (pid $!, log $PWD/$DATA/$node.log)"
	done
	for node in "${NODES[@]}"; do
		wait_for "$node (/healthz?js-enabled-only=true)" \
			healthy "$(conf_value http_port "$node")" "/healthz?js-enabled-only=true" || {
			echo "$node did not come up; last log lines:" >&2
			tail -n 20 "$DATA/$node.log" >&2
			exit 1
		}
	done
	# Plain /healthz also waits for the JetStream meta leader and for
	# every node to be current with it: the cluster has formed.
	wait_for "the cluster (/healthz on every node)" all_healthy
	status
}

stop() {
	local node pid
	for node in "${NODES[@]}"; do
		if ! running "$node"; then
			rm -f "$DATA/$node.pid"
			continue
		fi
		pid=$(pid_of "$node")
		kill -TERM "$pid"
		if ! wait_for "$node (pid $pid) to exit" bash -c "! kill -0 $pid 2>/dev/null"; then
			echo "$node ignored SIGTERM; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$DATA/$node.pid"
		echo "$node stopped"
	done
}

status() {
	local node port jsz leader size code=0
	for node in "${NODES[@]}"; do
		port=$(conf_value http_port "$node")
		if ! running "$node"; then
			echo "$node: not running"
			code=1
			continue
		fi
		if healthy "$port" /healthz; then
			jsz=$(http_get "$port" /jsz | tr -d '\n ')
			leader=$(grep -o '"meta_cluster":{"name":"[^"]*","leader":"[^"]*"' <<<"$jsz" | sed 's/.*"leader":"//; s/"$//')
			size=$(grep -o '"cluster_size":[0-9]*' <<<"$jsz" | head -n 1 | cut -d: -f2)
			echo "$node: pid $(pid_of "$node"), client 127.0.0.1:$(conf_value port "$node"), healthy, meta leader ${leader:-?}, cluster size ${size:-?}"
		else
			echo "$node: pid $(pid_of "$node"), not healthy yet (http://127.0.0.1:$port/healthz)"
			code=1
		fi
	done
	return $code
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
