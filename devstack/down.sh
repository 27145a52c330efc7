#!/usr/bin/env bash
# Stops the services devstack/up.sh started (by the pids in devstack/.run/).
# Idempotent; services it did not start are left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# stop NAME PIDFILE MATCH PORT
stop() {
	local name=$1 pidfile=$2 match=$3 port=$4 pid
	if ! pid="$(pid_alive "$pidfile" "$match")"; then
		rm -f "$pidfile"
		if port_open "$port"; then
			echo "down: $name: 127.0.0.1:$port answers but was not started by up.sh, left alone"
		else
			echo "down: $name: not running"
		fi
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	# livekit-server ignores a SIGTERM during its first 100 ms and waits for
	# participants on the first one; a second SIGTERM forces it.
	for i in $(seq 100); do
		running "$pid" || break
		[ "$i" = 10 ] && kill -TERM "$pid" 2>/dev/null
		sleep 0.1
	done
	if running "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		echo "down: $name: killed (pid $pid)"
	else
		echo "down: $name: stopped (pid $pid)"
	fi
	rm -f "$pidfile"
}

stop relay "$RUN/relay.pid" nestrelay "$RELAY_PORT"
stop livekit "$RUN/livekit.pid" livekit-server "$LIVEKIT_PORT"
stop redis "$RUN/redis.pid" redis-server "$REDIS_PORT"
