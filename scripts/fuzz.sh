#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/*.rs) for a fixed time each and fails on the
# first crash, leak, timeout or out-of-memory; prints each target's exec count at the end.
#
#   scripts/fuzz.sh [SECONDS]      # default 60 seconds per target; `make fuzz`
#   TARGETS="manifest" scripts/fuzz.sh 10
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). NOT part of
# `make test`: CI machines have no nightly. The invariants each target checks also run under
# the normal test command (fuzz/*_invariants.rs, included by the library's unit tests).
#
# Corpora: fuzz/corpus/<target>/ (the committed seed-* files, plus whatever libFuzzer adds,
# which git ignores). A crash leaves its input in fuzz/artifacts/<target>/; replay it with
# `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
targets="${TARGETS:-$(ls fuzz_targets | sed -n 's/\.rs$//p' | sort)}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

echo "building the fuzz targets (cargo +nightly fuzz build)" >&2
cargo +nightly fuzz build >&2

summary=()
failed=0
for target in $targets; do
    mkdir -p "corpus/$target"
    dict=()
    if [[ -f "dict/$target.dict" ]]; then
        dict=("-dict=dict/$target.dict")
    fi
    echo "fuzzing $target for ${seconds}s" >&2
    status=0
    cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        "${dict[@]}" >"$logs/$target.log" 2>&1 || status=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -n1)"
    peak="$(sed -n 's/^stat::peak_rss_mb: *//p' "$logs/$target.log" | tail -n1)"
    if [[ $status -ne 0 ]]; then
        failed=1
        tail -n 60 "$logs/$target.log" >&2
        summary+=("$target: FAILED (exit $status) after ${execs:-?} execs")
    else
        summary+=("$target: ok, ${execs:-?} execs in ${seconds}s, peak RSS ${peak:-?} MB")
    fi
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
