#!/usr/bin/env bash
# Measures `make demo` as a new user's first run: a fresh clone of this repository's HEAD with
# empty caches (its own CARGO_HOME, cargo target, GOMODCACHE, GOCACHE and harness cache, so
# every crate and Go module is downloaded and built). What is on the machine already stays
# used: Debian's packages, Go and Rust. Prints the demo's phase times and `time`'s summary.
#
#   scripts/demo-cold.sh [WORK_DIR]    (default: a new temporary directory, removed after)
#
# Run it on an otherwise idle machine: what it measures is two cores' worth of compiling.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${1:-}"
if [[ -z "$root" ]]; then
	root="$(mktemp -d "${TMPDIR:-/tmp}/imagestream-demo-cold.XXXXXX")"
	trap 'rm -rf "$root"' EXIT
fi
git clone -q "$repo" "$root/repo"
export CARGO_HOME="$root/cargo-home" CARGO_TARGET_DIR="$root/target" GOMODCACHE="$root/gomod" \
	GOCACHE="$root/gocache" IMAGESTREAM_CACHE_DIR="$root/cache" DEMO_EXIT=1 \
	PATH="$PATH:/usr/local/go/bin:$HOME/.cargo/bin"
cd "$root/repo"
status=0
TIMEFORMAT='make demo: %R s wall, %U s user, %S s system'
{ time make demo >"$root/demo.out" 2>"$root/demo.err" || status=$?; } 2>"$root/time"
grep -E '^demo: .* took' "$root/demo.err" || true
cat "$root/time"
grep -E '== running' "$root/demo.out" | sed 's/\x1b\[[0-9;]*m//g' || true
if ((status != 0)); then
	echo "demo-cold.sh: make demo failed ($status); its output:" >&2
	tail -n 40 "$root/demo.err" >&2
fi
exit "$status"
