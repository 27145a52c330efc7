#!/usr/bin/env bash
# Fuzz smoke test: runs every Fuzz* target found in the repository's
# *_test.go files for $FUZZTIME (default 10s) each, so new targets are picked
# up without editing anything. Targets in nested modules (e.g. devstack/relay)
# run from their own module. A crasher is saved by go test under the
# package's testdata/fuzz/ as usual. Exits non-zero if any target failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FUZZTIME="${FUZZTIME:-10s}"

mapfile -t hits < <(grep -r '^func Fuzz' --include='*_test.go' \
	--exclude-dir=.git --exclude-dir=node_modules --exclude-dir=testdata \
	--exclude-dir=vendor --exclude-dir=.run . | sort)
if ((${#hits[@]} == 0)); then
	echo "fuzz-smoke: no Fuzz targets found"
	exit 0
fi

# moddir DIR: the nearest directory at or above DIR with a go.mod.
moddir() {
	local d=$1
	while [ "$d" != "." ] && [ "$d" != "/" ] && [ ! -f "$d/go.mod" ]; do d="$(dirname "$d")"; done
	echo "$d"
}

failed=()
n=0
for hit in "${hits[@]}"; do
	file="${hit%%:*}"
	name="$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"${hit#*:}")"
	dir="$(dirname "${file#./}")"
	mod="$(moddir "$dir")"
	if [ "$mod" = "." ]; then rel="$dir"; else rel="${dir#"$mod"}"; rel="${rel#/}"; fi
	pkg="./$rel"
	[ -n "$rel" ] && [ "$rel" != "." ] || pkg=.
	n=$((n + 1))
	echo "fuzz-smoke: $name in $dir ($FUZZTIME)"
	# go test's fuzzing coordinator sometimes ends a run with a bare
	# "context deadline exceeded" when -fuzztime runs out while a worker is
	# busy: no input failed and none is written. That run is tried once more;
	# a real failure names its input ("Failing input written to ...") and is
	# never retried.
	for try in 1 2; do
		log="$(mktemp)"
		if (cd "$mod" && go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg") 2>&1 | tee "$log"; then
			rm -f "$log"
			break
		fi
		if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
			echo "fuzz-smoke: $name ended on the coordinator's deadline with no failing input; once more"
			rm -f "$log"
			continue
		fi
		rm -f "$log"
		failed+=("$dir:$name")
		break
	done
done

if ((${#failed[@]})); then
	echo "fuzz-smoke: ${#failed[@]} of $n targets FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz-smoke: all $n targets passed"
