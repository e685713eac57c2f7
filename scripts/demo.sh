#!/usr/bin/env bash
# `make demo`: the operator's main job on an embedded default. Starts a throwaway
# kube-apiserver + etcd (e2e/with-cluster.sh) and a local registry with sample images, installs
# the CRDs, the configuration and the operator's roles, runs the operator as a local process
# under its own ServiceAccount, applies the example streams and shows them imported. Then it
# keeps everything running until Ctrl-C (DEMO_EXIT=1 stops at once, for scripted runs).
set -euo pipefail
cd "$(dirname "$0")/.."
# each phase's time is printed, and the time to "running" (DEMO_START, read by demo-inner.sh)
DEMO_START=$(date +%s)
export DEMO_START
phase() { echo "demo: $1 took $(($(date +%s) - $2)) s" >&2; }
t=$(date +%s)
scripts/setup.sh demo
phase "installing what the demo needs" "$t"
t=$(date +%s)
cargo build --quiet
phase "building the operator" "$t"
t=$(date +%s)
e2e/cluster/build.sh >/dev/null
phase "building the cluster harness" "$t"
exec e2e/with-cluster.sh scripts/demo-inner.sh
