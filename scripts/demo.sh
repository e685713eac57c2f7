#!/usr/bin/env bash
# `make demo`: the operator's main job on an embedded default. Starts a throwaway
# kube-apiserver + etcd (e2e/with-cluster.sh) and a local registry with sample images, installs
# the CRDs, the configuration and the operator's roles, runs the operator as a local process
# under its own ServiceAccount, applies the example streams and shows them imported. Then it
# keeps everything running until Ctrl-C (DEMO_EXIT=1 stops at once, for scripted runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet
exec e2e/with-cluster.sh scripts/demo-inner.sh
