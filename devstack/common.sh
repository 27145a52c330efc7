# Shared by up.sh and down.sh (sourced, not run).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${NESTBOT_CACHE:-$HOME/.cache/nestbot}"
BIN="$CACHE/bin"
RUN="$ROOT/devstack/.run"
LIVEKIT="$BIN/livekit-server-v1.13.5"
RELAY="$BIN/nestrelay"
REDIS_PORT=6379
LIVEKIT_PORT=7880
LIVEKIT_UDP_PORT=7882
RELAY_PORT=7777

# port_open PORT: true if something accepts TCP on 127.0.0.1:PORT.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# pid_alive PIDFILE NAME: prints the pid if PIDFILE names a live process whose
# command line mentions NAME (so a recycled pid is never signalled).
pid_alive() {
	local pid
	[ -s "$1" ] || return 1
	pid="$(tr -dc 0-9 <"$1")"
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
	echo "$pid"
}

# running PID: true while PID exists and is not a zombie (an exited process
# can stay a zombie for a second or two until PID 1 reaps it).
running() {
	local st
	st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}
