#!/usr/bin/env bash
# Run a command against one shared, throwaway kube-apiserver + etcd (e2e/cluster).
#
#   e2e/with-cluster.sh CMD [ARGS...]      e.g. e2e/with-cluster.sh cargo nextest run
#
# Builds the harness (cached, see e2e/cluster/build.sh), starts it on a temp dir with free
# ports, waits until it is ready, then runs CMD with
#   IMAGESTREAM_TEST_KUBECONFIG, KUBECONFIG  the admin kubeconfig (system:masters)
#   IMAGESTREAM_CLUSTER_HARNESS              the harness binary (for tests that start their own)
#   IMAGESTREAM_CLUSTER_DIR                  the harness directory (cluster.log, pki/)
# and always stops the cluster afterwards (SIGTERM, then SIGKILL after 20 s). Exits with
# CMD's status. A SIGTERM or SIGINT to this script is passed on to CMD as SIGTERM.
#
# Environment: IMAGESTREAM_CLUSTER_READY_TIMEOUT (seconds, default 120);
# IMAGESTREAM_KEEP_CLUSTER_DIR=1 keeps the directory (and its log) after the run.
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$("$here/cluster/build.sh")"
timeout="${IMAGESTREAM_CLUSTER_READY_TIMEOUT:-120}"

dir="$(mktemp -d "${TMPDIR:-/tmp}/imagestream-cluster.XXXXXX")"
pid=""

stop_cluster() {
	local status=$?
	trap '' INT TERM # a second signal must not cut the clean-up short (it is bounded)
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 20))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "with-cluster.sh: the harness did not stop within 20 s; killing it" >&2
			# and its kube-controller-manager, which would otherwise outlive it (its parent-death
			# signal is a SIGTERM, a graceful stop of its own)
			local children
			children="$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)"
			kill -KILL "$pid" $children 2>/dev/null || true
			deadline=$((SECONDS + 5))
			for child in $children; do
				while kill -0 "$child" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
			done
		fi
		wait "$pid" 2>/dev/null || true
	fi
	if [[ "${IMAGESTREAM_KEEP_CLUSTER_DIR:-}" == 1 ]]; then
		echo "with-cluster.sh: cluster directory kept at $dir" >&2
	else
		rm -rf "$dir"
	fi
	exit "$status"
}
trap stop_cluster EXIT
# While a background command starts, a signal is only noted: handled right after `cmd &`, an
# exit would come before `pid=$!` and leave the command running. Handled after that line.
signalled=""
trap 'signalled=130' INT
trap 'signalled=143' TERM

log_tail() {
	echo "--- tail of $dir/cluster.log ---" >&2
	tail -n 60 "$dir/harness.stderr" "$dir/cluster.log" >&2 2>/dev/null || true
}

# --pdeathsig: the harness gets SIGTERM if this script dies without running its trap.
setpriv --pdeathsig TERM -- "$bin" --dir "$dir" >/dev/null 2>"$dir/harness.stderr" &
pid=$!
trap 'exit 130' INT
trap 'exit 143' TERM
[[ -z "$signalled" ]] || exit "$signalled"

start=$SECONDS
until [[ -f "$dir/ready" ]]; do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" && rc=0 || rc=$?
		pid=""
		echo "with-cluster.sh: the cluster harness exited with status $rc before it was ready" >&2
		log_tail
		exit 1
	fi
	if ((SECONDS - start >= timeout)); then
		echo "with-cluster.sh: the cluster harness was not ready after ${timeout}s" >&2
		log_tail
		exit 1
	fi
	sleep 0.2
done
echo "with-cluster.sh: cluster ready at $(cat "$dir/ready") after $((SECONDS - start))s (log: $dir/cluster.log)" >&2

export IMAGESTREAM_TEST_KUBECONFIG="$dir/kubeconfig"
export KUBECONFIG="$dir/kubeconfig"
export IMAGESTREAM_CLUSTER_HARNESS="$bin"
export IMAGESTREAM_CLUSTER_DIR="$dir"

# CMD runs in the background so that a SIGTERM or SIGINT to this script is handled at once
# (bash runs traps only between commands, so a foreground CMD would delay it until CMD ended):
# it is passed on to CMD as SIGTERM, and the cluster is stopped once CMD has ended. A
# background command would get /dev/null as stdin and ignore SIGINT; `<&0` and
# `env --default-signal` keep both as they are for a foreground command (Ctrl-C in a terminal
# still reaches CMD itself).
set +e
trap 'signalled=130' INT
trap 'signalled=143' TERM
env --default-signal=INT,QUIT "$@" <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' INT TERM
[[ -z "$signalled" ]] || kill -TERM "$child" 2>/dev/null
while true; do
	wait "$child"
	status=$?
	# wait also returns when a trapped signal arrives: go on waiting while CMD still runs
	kill -0 "$child" 2>/dev/null || break
done
set -e
exit "$status"
