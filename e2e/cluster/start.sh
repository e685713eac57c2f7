#!/usr/bin/env bash
# Start the cluster harness in the background (detached from this shell) and wait until it
# is ready; or stop it again.
#
#   e2e/cluster/start.sh DIR          start; prints DIR/kubeconfig on stdout when ready
#   e2e/cluster/start.sh stop DIR     stop (SIGTERM, then SIGKILL after 20 s)
#
# Then e.g.:  export KUBECONFIG=DIR/kubeconfig; kubectl get ns
#
# DIR holds pki/, etcd/, cluster.log, harness.pid, kubeconfig and the marker file ready
# (containing the server URL). Environment: IMAGESTREAM_CLUSTER_READY_TIMEOUT (seconds,
# default 120), IMAGESTREAM_CLUSTER_PORT (kube-apiserver port, default: a free one).
#
# The same by hand: cluster-harness --dir DIR & then wait for DIR/ready to exist.
set -euo pipefail

usage() {
	echo "usage: $0 DIR | $0 stop DIR" >&2
	exit 2
}

stop() {
	local dir="$1" pid
	[[ -f "$dir/harness.pid" ]] || { echo "start.sh: no $dir/harness.pid" >&2; exit 1; }
	pid="$(cat "$dir/harness.pid")"
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "start.sh: harness $pid is not running" >&2
		return 0
	fi
	kill -TERM "$pid"
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "start.sh: harness $pid did not stop within 20 s; killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
}

[[ $# -ge 1 ]] || usage
if [[ "$1" == stop ]]; then
	[[ $# -eq 2 ]] || usage
	stop "$2"
	exit 0
fi
[[ $# -eq 1 ]] || usage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$("$here/build.sh")"
mkdir -p "$1"
dir="$(cd "$1" && pwd)"
timeout="${IMAGESTREAM_CLUSTER_READY_TIMEOUT:-120}"
if [[ -f "$dir/harness.pid" ]] && kill -0 "$(cat "$dir/harness.pid")" 2>/dev/null; then
	echo "start.sh: a harness is already running for $dir (pid $(cat "$dir/harness.pid"))" >&2
	exit 1
fi
rm -f "$dir/ready"

setsid "$bin" --dir "$dir" --port "${IMAGESTREAM_CLUSTER_PORT:-0}" </dev/null >/dev/null 2>"$dir/harness.stderr" &
pid=$!
start=$SECONDS
until [[ -f "$dir/ready" ]]; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "start.sh: the harness exited before it was ready; see $dir/cluster.log" >&2
		tail -n 40 "$dir/harness.stderr" "$dir/cluster.log" >&2 2>/dev/null || true
		exit 1
	fi
	if ((SECONDS - start >= timeout)); then
		echo "start.sh: not ready after ${timeout}s; stopping it (log: $dir/cluster.log)" >&2
		tail -n 40 "$dir/cluster.log" >&2 2>/dev/null || true
		kill -TERM "$pid" 2>/dev/null || true
		exit 1
	fi
	sleep 0.2
done
echo "start.sh: ready at $(cat "$dir/ready") after $((SECONDS - start))s (pid $pid, log $dir/cluster.log)" >&2
echo "$dir/kubeconfig"
