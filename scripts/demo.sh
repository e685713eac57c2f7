#!/usr/bin/env bash
# `make demo`: the operator's main job on an embedded default. Starts a throwaway
# kube-apiserver + etcd (e2e/with-cluster.sh) and a local registry with sample images, installs
# the CRDs, the configuration and the operator's roles, runs the operator as a local process
# under its own ServiceAccount, applies the example streams and shows them imported. Then it
# keeps everything running until Ctrl-C (DEMO_EXIT=1 stops at once, for scripted runs).
#
# Before that it installs only what the demo needs (scripts/setup.sh demo) and builds the
# cluster harness (Go) and the operator (the dev build the tests use too) side by side: on two
# cores the single-threaded stretches of each build (rustc on the operator's own crate, Go's
# linker, the downloads) leave a core to the other. When the demo is up it prints how long each
# phase took: on a fresh machine that is the two builds; a second run starts in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/.cargo/bin"

started=$EPOCHREALTIME
scripts/setup.sh demo
installed=$EPOCHREALTIME

times="$(mktemp -d "${TMPDIR:-/tmp}/imagestream-demo-build.XXXXXX")"
builds=()
# each build runs in a process group of its own (set -m below), so that Ctrl-C or SIGTERM here
# stops all of it: cargo's rustc and go's compile processes too
stop_builds() {
	for group in "${builds[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
	wait
}
trap 'rm -rf "$times"' EXIT
# a signal while a build starts is handled once its process group is noted
signalled=""
trap 'signalled=130' INT
trap 'signalled=143' TERM

# timed NAME CMD...: runs CMD, writes its start and end time to $times/NAME
timed() {
	local name=$1 t0=$EPOCHREALTIME status=0
	shift
	"$@" || status=$?
	echo "$t0 $EPOCHREALTIME" >"$times/$name"
	return "$status"
}
echo "demo: building the cluster harness (Go) and the operator (Rust) side by side; a first run takes minutes" >&2
set -m
timed harness e2e/cluster/build.sh >/dev/null &
builds+=($!)
timed operator cargo build --quiet --bin imagestream-operator &
builds+=($!)
set +m
trap 'stop_builds; exit 130' INT
trap 'stop_builds; exit 143' TERM
[[ -z "$signalled" ]] || { stop_builds; exit "$signalled"; }
failed=()
wait "${builds[0]}" || failed+=("the cluster harness (e2e/cluster/build.sh)")
wait "${builds[1]}" || failed+=("the operator (cargo build)")
builds=()
if ((${#failed[@]})); then
	printf 'demo: building %s failed\n' "${failed[@]}" >&2
	exit 1
fi

# for the summary scripts/demo-inner.sh prints once the demo is up
read -r harness_start harness_end <"$times/harness"
read -r operator_start operator_end <"$times/operator"
export DEMO_STARTED="$started" DEMO_INSTALLED="$installed" DEMO_BUILT="$EPOCHREALTIME"
export DEMO_HARNESS_BUILD="$harness_start $harness_end" DEMO_OPERATOR_BUILD="$operator_start $operator_end"
rm -rf "$times"
trap - EXIT INT TERM
exec e2e/with-cluster.sh scripts/demo-inner.sh
