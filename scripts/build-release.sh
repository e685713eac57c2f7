#!/usr/bin/env bash
# Builds the release binary the container image ships, statically linked so that it runs in a
# `FROM scratch` image, and checks that it is static and runs. The Dockerfile runs this same
# script and `make test` runs it too (`make release-static`), so the image's build cannot rot.
#
#   scripts/build-release.sh [OUT_DIR]    also copies the binary to OUT_DIR
#
# Prints the binary's path on stdout; its size and the build time on stderr.
# Build output goes to $CARGO_TARGET_DIR (as .ci/run sets it), so CI rebuilds only what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=x86_64-unknown-linux-gnu
# glibc linked in (+crt-static). With an explicit --target, RUSTFLAGS reach only the target's
# crates, not build scripts and proc macros (which must stay dynamic to be loaded), and the
# artifacts live under target/<triple>/ apart from the host builds the tests use.
export RUSTFLAGS="-C target-feature=+crt-static"
# symbol tables are a third of the binary and nobody reads them in the image
export CARGO_PROFILE_RELEASE_STRIP=symbols

start=$SECONDS
cargo build --release --locked --quiet --target "$target" --bin imagestream-operator
bin="${CARGO_TARGET_DIR:-target}/$target/release/imagestream-operator"

# a dynamic binary would fail in the scratch image only at start-up: fail here instead
if ! ldd "$bin" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
	echo "build-release.sh: $bin is dynamically linked:" >&2
	ldd "$bin" >&2 || true
	exit 1
fi
"$bin" --help >/dev/null

size=$(stat -c %s "$bin")
echo "build-release.sh: $bin: static, $((size / 1024 / 1024)) MiB ($size bytes), built in $((SECONDS - start)) s" >&2
if [[ $# -gt 0 ]]; then
	mkdir -p "$1"
	cp "$bin" "$1/"
	bin="$1/imagestream-operator"
fi
echo "$bin"
