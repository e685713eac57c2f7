#!/usr/bin/env bash
# Prepares a build of the operator for linux/arm64 (aarch64-unknown-linux-gnu) from Debian's
# packages alone, and prints the path of the rustc to build it with (for RUSTC=).
#
# rustup's standard library for aarch64 is not among the registries the project builds from, and
# Debian has no std for the rustc rustup installed. Debian does have a whole Rust toolchain with
# its std for every Debian architecture: rustc-web (bookworm-security; the toolchain Debian
# builds Firefox and Chromium with, newer than rustc 1.89, the crate's rust-version). So:
#
#   - installed with apt (amd64 packages, nothing on PATH that shadows rustup's rustc or cargo):
#     gcc-aarch64-linux-gnu (cross compiler for the C in aws-lc-sys, and the linker),
#     libc6-dev-arm64-cross (static glibc for +crt-static), qemu-user-static (runs the arm64
#     binary once as a check; no binfmt registration);
#   - unpacked, not installed, into the cache (installing rustc-web would put a second rustc and
#     cargo into /usr/bin, and its arm64 std needs dpkg's arm64 architecture): rustc-web, its
#     std for amd64 (build scripts and proc macros) and arm64, librustc_driver and the libLLVM
#     it links. apt-get fetches them with a package list of its own that includes arm64, so the
#     machine's apt configuration is left as it is.
#
# Cached in ${IMAGESTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imagestream-operator}/rust-web-<version>;
# a warm call only checks that the cache is complete. The version is Debian's newest at the
# first call; remove the directory to take a newer one. Cargo stays rustup's (cargo passes
# RUSTC on, and a newer rustc takes an older cargo's flags).
#
# stdout: the path of the rustc wrapper, and nothing else. Progress goes to stderr.
set -euo pipefail

cache="${IMAGESTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imagestream-operator}"
mkdir -p "$cache"
apt_install() {
	echo "cross-toolchain.sh: installing $* (Debian)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[[ -f /usr/aarch64-linux-gnu/lib/libc.a ]] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
((${#need[@]} == 0)) || apt_install "${need[@]}"

ready() {
	local link="$cache/rust-web"
	[[ -f "$link/ready" ]] || return 1
	cat "$link/ready"
}
if wrapper="$(ready)"; then
	echo "$wrapper"
	exit 0
fi

exec 9>"$cache/rust-web.lock"
flock 9
if wrapper="$(ready)"; then
	echo "$wrapper"
	exit 0
fi

work="$(mktemp -d "$cache/rust-web.tmp.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs"
# apt with a package list of its own that knows arm64 packages (the machine's sources)
apt_arm64=(-o APT::Architectures::=amd64 -o APT::Architectures::=arm64 -o APT::Sandbox::User=root
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
	-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
echo "cross-toolchain.sh: fetching Debian's rustc-web with its aarch64 std" >&2
apt-get "${apt_arm64[@]}" update -qq
# field FIELD PACKAGE: that field of the package's candidate version
field() { apt-cache "${apt_arm64[@]}" show --no-all-versions "$2" | sed -n "s/^$1: //p" | head -n1; }
version="$(field Version rustc-web)"
[[ -n "$version" ]] || { echo "cross-toolchain.sh: Debian has no rustc-web here" >&2; exit 1; }
# rustc-web → libstd-rust-web-dev → libstd-rust-web-X.Y (librustc_driver) → libllvmN
runtime="$(field Depends "libstd-rust-web-dev=$version" | grep -o 'libstd-rust-web-[0-9.]*' | head -n1)"
llvm="$(field Depends "$runtime=$version" | grep -o 'libllvm[0-9]*' | head -n1)"
[[ -n "$runtime" && -n "$llvm" ]] || { echo "cross-toolchain.sh: cannot read rustc-web's dependencies" >&2; exit 1; }
(
	cd "$work/debs"
	apt-get "${apt_arm64[@]}" download -qq "rustc-web=$version" "libstd-rust-web-dev=$version" \
		"libstd-rust-web-dev:arm64=$version" "$runtime=$version" "$llvm" >&2
)
root="$work/root"
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
rm -rf "$root/usr/share"

upstream="$(echo "$version" | sed 's/+.*//')"
dir="$cache/rust-web-$upstream"
rm -rf "$dir"
cat >"$root/rustc" <<EOF
#!/bin/sh
# Debian's rustc-web $version, unpacked by scripts/cross-toolchain.sh
LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/usr/bin/rustc" "\$@"
EOF
chmod +x "$root/rustc"
mv "$root" "$dir"

# the libraries libLLVM links from the machine (libxml2, libz3, ...) may be missing on a fresh one
missing="$(LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu" ldd "$dir/usr/bin/rustc" "$dir"/usr/lib/x86_64-linux-gnu/libLLVM*.so.* |
	awk '/not found/ { print $1 }' | sort -u)"
if [[ -n "$missing" ]]; then
	echo "cross-toolchain.sh: $llvm needs $(echo "$missing" | tr '\n' ' ')" >&2
	mapfile -t deps < <(field Depends "$llvm" | tr ',' '\n' | sed 's/^ *//; s/ .*//; s/|.*//' | grep -v '^$')
	apt_install "${deps[@]}"
fi
"$dir/rustc" --print target-libdir --target aarch64-unknown-linux-gnu >/dev/null
[[ -n "$(ls "$dir"/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib/libstd-*.rlib 2>/dev/null)" ]] || {
	echo "cross-toolchain.sh: no aarch64 std in $dir" >&2
	exit 1
}
echo "$dir/rustc" >"$dir/ready"
ln -sfn "$dir" "$cache/rust-web"
echo "cross-toolchain.sh: $("$dir/rustc" --version) with std for aarch64 in $dir" >&2
echo "$dir/rustc"
