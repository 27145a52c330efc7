#!/usr/bin/env bash
# Installs what nestbot's local stack and tests need. Idempotent: a second run
# only checks and takes a second or two.
#   - redis-server and libsecp256k1-dev (apt), if missing
#   - livekit-server v1.13.5 -> $CACHE/bin/livekit-server-v1.13.5
#   - the khatru relay (devstack/relay) -> $CACHE/bin/nestrelay, rebuilt when
#     its sources are newer than the binary
#   - interop/node_modules (npm ci), when missing or older than the lockfile
#   - chromium (apt) and clients/js, web node_modules (npm ci): the library and page tests
# CACHE is ${NESTBOT_CACHE:-$HOME/.cache/nestbot}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${NESTBOT_CACHE:-$HOME/.cache/nestbot}"
BIN="$CACHE/bin"
LIVEKIT_VERSION=v1.13.5
LIVEKIT="$BIN/livekit-server-$LIVEKIT_VERSION"
RELAY="$BIN/nestrelay"
# Optionally, a livekit-server built earlier (NESTBOT_LIVEKIT_PREBUILT), copied instead of rebuilt
# (about 90 s) when it is the right version.
LIVEKIT_PREBUILT="${NESTBOT_LIVEKIT_PREBUILT:-}"

say() { printf 'install: %s\n' "$*"; }
mkdir -p "$BIN"

# --- apt packages ---------------------------------------------------------
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
dpkg-query -W -f='${Status}' libsecp256k1-dev 2>/dev/null | grep -q 'install ok installed' || need+=(libsecp256k1-dev)
# chromium: the browser the web page tests drive (puppeteer-core, web/test)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	say "apt-get install ${need[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
	say "apt: redis-server, libsecp256k1-dev and chromium already installed"
fi
say "redis: $(redis-server --version | cut -d' ' -f1-3)"

# --- livekit-server --------------------------------------------------------
if [ -x "$LIVEKIT" ]; then
	say "livekit: $LIVEKIT already installed"
elif [ -x "$LIVEKIT_PREBUILT" ] && "$LIVEKIT_PREBUILT" --version 2>/dev/null | grep -qx "livekit-server version ${LIVEKIT_VERSION#v}"; then
	cp "$LIVEKIT_PREBUILT" "$LIVEKIT.tmp"
	mv "$LIVEKIT.tmp" "$LIVEKIT"
	say "livekit: copied $LIVEKIT_PREBUILT to $LIVEKIT"
else
	say "livekit: building $LIVEKIT_VERSION with go install (about 90 s on 2 cores)"
	tmp="$(mktemp -d "$BIN/.livekit-build.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	(cd / && GOWORK=off GOBIN="$tmp" go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION")
	mv "$tmp/server" "$LIVEKIT"
	rm -rf "$tmp"
	trap - EXIT
	say "livekit: built $LIVEKIT"
fi

# --- relay -------------------------------------------------------------------
relay_src="$ROOT/devstack/relay"
if [ ! -x "$RELAY" ] || [ -n "$(find "$relay_src" -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$RELAY" -print -quit)" ]; then
	(cd "$relay_src" && GOWORK=off go build -o "$RELAY.tmp" .)
	mv "$RELAY.tmp" "$RELAY"
	say "relay: built $RELAY"
else
	say "relay: $RELAY is up to date"
fi

# --- interop (Node) ----------------------------------------------------------
interop="$ROOT/interop"
if [ -f "$interop/package-lock.json" ]; then
	if [ ! -d "$interop/node_modules" ] || [ "$interop/package-lock.json" -nt "$interop/node_modules" ]; then
		if command -v npm >/dev/null 2>&1; then
			(cd "$interop" && npm ci --no-audit --no-fund --loglevel=error)
			touch "$interop/node_modules"
			say "interop: npm ci done"
		else
			say "interop: WARNING npm not found; interop/node_modules not installed"
		fi
	else
		say "interop: node_modules up to date"
	fi
else
	say "interop: no package-lock.json, skipped"
fi

# --- clients/js and web (Node): the client library and the restart page's bundler and browser driver
for dir in "$ROOT/clients/js" "$ROOT/web"; do
	name="${dir#"$ROOT/"}"
	if [ ! -f "$dir/package-lock.json" ]; then
		say "$name: no package-lock.json, skipped"
	elif [ -d "$dir/node_modules" ] && [ ! "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
		say "$name: node_modules up to date"
	elif command -v npm >/dev/null 2>&1; then
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
		touch "$dir/node_modules"
		say "$name: npm ci done"
	else
		say "$name: WARNING npm not found; node_modules not installed"
	fi
done

say "done (binaries in $BIN)"
