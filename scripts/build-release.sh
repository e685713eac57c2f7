#!/usr/bin/env bash
# Builds the release binary the container image ships, statically linked so that it runs in a
# `FROM scratch` image, and checks that it is static and runs. The Dockerfile runs this same
# script and `make test` runs it too (`make release-static`), so the image's build cannot rot.
#
#   scripts/build-release.sh [--arch amd64|arm64] [OUT_DIR]    also copies the binary to OUT_DIR
#
# --arch defaults to the machine's own (so the Dockerfile builds natively on either). arm64 on
# an amd64 machine is a cross build with Debian's toolchain (scripts/cross-toolchain.sh: rustup's
# std for aarch64 is not to be had here), checked by running it under qemu-aarch64-static.
#
# Prints the binary's path on stdout; its size and the build time on stderr.
# Build output goes to $CARGO_TARGET_DIR (as .ci/run sets it), so CI rebuilds only what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

host="$(rustc -vV | sed -n 's/^host: //p')"
arch=""
if [[ "${1:-}" == --arch ]]; then
	arch="${2:?--arch needs amd64 or arm64}"
	shift 2
fi
case "${arch:-${host%%-*}}" in
amd64 | x86_64) target=x86_64-unknown-linux-gnu ;;
arm64 | aarch64) target=aarch64-unknown-linux-gnu ;;
*)
	echo "build-release.sh: no release build for ${arch:-$host}" >&2
	exit 2
	;;
esac
run=()
if [[ "$target" != "$host" ]]; then
	case "$host/$target" in
	x86_64-unknown-linux-gnu/aarch64-unknown-linux-gnu)
		RUSTC="$(scripts/cross-toolchain.sh)"
		export RUSTC
		export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
		export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
		run=(qemu-aarch64-static)
		;;
	*)
		echo "build-release.sh: no cross build from $host to $target" >&2
		exit 2
		;;
	esac
fi

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
# (readelf rather than ldd, which cannot read another architecture's binaries)
if readelf -lW "$bin" | grep -q 'program interpreter' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
	echo "build-release.sh: $bin is dynamically linked:" >&2
	readelf -dW "$bin" | grep '(NEEDED)' >&2 || true
	exit 1
fi
"${run[@]}" "$bin" --help >/dev/null

size=$(stat -c %s "$bin")
echo "build-release.sh: $bin: $target, static, $((size / 1024 / 1024)) MiB ($size bytes), built in $((SECONDS - start)) s" >&2
if [[ $# -gt 0 ]]; then
	mkdir -p "$1"
	cp "$bin" "$1/"
	bin="$1/imagestream-operator"
fi
echo "$bin"
