#!/usr/bin/env bash
# Starts a persistent local stack on loopback for running the bot by hand:
#   redis    127.0.0.1:6379  (no persistence)
#   livekit  127.0.0.1:7880  (--dev: key devkey, secret secret; media on UDP 127.0.0.1:7882)
#   relay    127.0.0.1:7777  (badger db in devstack/.run/relay-db)
# Idempotent: a service whose port already answers is left alone. Pidfiles and
# logs are in devstack/.run/. Stop with devstack/down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mkdir -p "$RUN"

for b in "$LIVEKIT" "$RELAY"; do
	[ -x "$b" ] || { echo "up: $b is missing: run devstack/install.sh (make deps)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "up: redis-server is missing: run devstack/install.sh (make deps)" >&2; exit 1; }

# wait_port NAME PORT LOG: wait up to 10 s for PORT to answer.
wait_port() {
	for _ in $(seq 100); do
		port_open "$2" && return 0
		sleep 0.1
	done
	echo "up: $1 did not come up on 127.0.0.1:$2; last lines of $3:" >&2
	tail -n 30 "$3" >&2 || true
	exit 1
}

# redis
if port_open "$REDIS_PORT"; then
	echo "up: redis: 127.0.0.1:$REDIS_PORT already answers, left alone"
else
	mkdir -p "$RUN/redis"
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
		--daemonize yes --dir "$RUN/redis" --pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log"
	wait_port redis "$REDIS_PORT" "$RUN/redis.log"
	echo "up: redis: started (pid $(cat "$RUN/redis.pid"))"
fi

# livekit: --dev keeps the placeholder key devkey/secret; the config body only
# keeps media on loopback (the RTC TCP port would bind every interface, so it
# is off).
if port_open "$LIVEKIT_PORT"; then
	echo "up: livekit: 127.0.0.1:$LIVEKIT_PORT already answers, left alone"
else
	config="$(printf 'port: %d\nrtc:\n  tcp_port: 0\n  udp_port: %d\n  node_ip: 127.0.0.1\n  use_external_ip: false\n  enable_loopback_candidate: true\n  interfaces:\n    includes: [lo]\n' "$LIVEKIT_PORT" "$LIVEKIT_UDP_PORT")"
	setsid nohup "$LIVEKIT" --dev --bind 127.0.0.1 --config-body "$config" >>"$RUN/livekit.log" 2>&1 </dev/null &
	echo $! >"$RUN/livekit.pid"
	wait_port livekit "$LIVEKIT_PORT" "$RUN/livekit.log"
	echo "up: livekit: started (pid $(cat "$RUN/livekit.pid"))"
fi

# relay
if port_open "$RELAY_PORT"; then
	echo "up: relay: 127.0.0.1:$RELAY_PORT already answers, left alone"
else
	setsid nohup "$RELAY" --listen "127.0.0.1:$RELAY_PORT" --db "$RUN/relay-db" >>"$RUN/relay.log" 2>&1 </dev/null &
	echo $! >"$RUN/relay.pid"
	wait_port relay "$RELAY_PORT" "$RUN/relay.log"
	echo "up: relay: started (pid $(cat "$RUN/relay.pid"))"
fi

cat <<URLS

  redis    redis://127.0.0.1:$REDIS_PORT/0
  livekit  http://127.0.0.1:$LIVEKIT_PORT  (ws://127.0.0.1:$LIVEKIT_PORT; key devkey, secret secret)
  relay    ws://127.0.0.1:$RELAY_PORT
  logs     $RUN/*.log
URLS
