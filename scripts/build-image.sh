#!/usr/bin/env bash
# Builds the container image with buildah from the binary scripts/build-release.sh builds
# (the Dockerfile's final stage with --build-arg BINARY=prebuilt: no Docker engine, no image
# pull), starts the binary inside it, fails when the image is over 30 MB, and writes it out.
#
#   scripts/build-image.sh [--arch amd64|arm64|amd64,arm64] [NAME:TAG [ARCHIVE]]
#
# One architecture (default: this machine's): a docker-archive (for `docker load`, `podman
# load`, `kind load image-archive`, `skopeo copy`), default
# $CARGO_TARGET_DIR/imagestream-operator-image.tar.
# Several: an OCI image index with one image per architecture (what a registry serves as one
# multi-arch tag), as an oci-archive (`skopeo copy --all oci-archive:ARCHIVE docker://...`,
# `podman load`), default $CARGO_TARGET_DIR/imagestream-operator-index.tar. An image for
# another architecture than the machine's is checked by starting its binary under qemu-user.
#
# buildah works in a storage of its own, thrown away afterwards: nothing piles up in the
# machine's image store from one run to the next, and vfs needs no overlay support.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v buildah >/dev/null; then
	echo "build-image.sh: installing buildah (Debian)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi

case "$(uname -m)" in
x86_64) native=amd64 ;;
aarch64) native=arm64 ;;
*) native="$(uname -m)" ;;
esac
arches="$native"
if [[ "${1:-}" == --arch ]]; then
	arches="${2:?--arch needs amd64, arm64 or amd64,arm64}"
	shift 2
fi
IFS=, read -r -a arches <<<"$arches"
name="${1:-imagestream-operator:latest}"
if ((${#arches[@]} == 1)); then
	archive="${2:-${CARGO_TARGET_DIR:-target}/imagestream-operator-image.tar}"
else
	archive="${2:-${CARGO_TARGET_DIR:-target}/imagestream-operator-index.tar}"
fi
limit=$((30 * 1000 * 1000))

work="$(mktemp -d "${TMPDIR:-/tmp}/imagestream-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# buildah's output (and its warnings about missing /etc/subuid ranges) only when it fails
quietly() {
	if ! buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@" \
		>"$work/buildah.log" 2>&1; then
		echo "build-image.sh: buildah $1 failed:" >&2
		cat "$work/buildah.log" >&2
		exit 1
	fi
}
b() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@" 2>"$work/buildah.log"; }

start=$SECONDS
images=()
for arch in "${arches[@]}"; do
	image="$name"
	((${#arches[@]} == 1)) || image="localhost/imagestream-operator-build:$arch"
	context="$work/context-$arch"
	mkdir -p "$context"
	scripts/build-release.sh --arch "$arch" "$context" >/dev/null
	cp /etc/ssl/certs/ca-certificates.crt "$context/"
	quietly bud --isolation chroot --platform "linux/$arch" --build-arg BINARY=prebuilt \
		-f Dockerfile -t "$image" "$context"
	got="$(b inspect --type image --format '{{.OCIv1.OS}}/{{.OCIv1.Architecture}}' "$image")"
	if [[ "$got" != "linux/$arch" ]]; then
		echo "build-image.sh: $image is for $got, not linux/$arch" >&2
		exit 1
	fi

	# the binary starts in the image, as the image's user, with nothing else there; another
	# architecture's binary under qemu-user, from the image's own files
	quietly from --pull=never --name "check-$arch" "$image"
	if [[ "$arch" == "$native" ]]; then
		# runc's sealed copy of itself fails now and then with "Close_Fd sealing memfd copy:
		# Device or resource busy" (once in CI, 2026-12-08): a second try before it counts
		b run --isolation chroot "check-$arch" -- /imagestream-operator --help >/dev/null ||
			quietly run --isolation chroot "check-$arch" -- /imagestream-operator --help
	else
		root="$(b mount "check-$arch")"
		case "$arch" in
		arm64) machine=AArch64 qemu=qemu-aarch64-static ;;
		*) echo "build-image.sh: no check for $arch images" >&2 && exit 1 ;;
		esac
		if ! readelf -h "$root/imagestream-operator" | grep -q "Machine: *$machine"; then
			echo "build-image.sh: the binary in $image is not for $arch" >&2
			exit 1
		fi
		"$qemu" "$root/imagestream-operator" --help >/dev/null
		quietly umount "check-$arch"
	fi

	# the size a registry stores, compressed and not
	quietly push "$image" "dir:$work/compressed-$arch"
	quietly push --disable-compression "$image" "dir:$work/raw-$arch"
	size="$(du -sb "$work/raw-$arch" | cut -f1)"
	compressed="$(du -sb "$work/compressed-$arch" | cut -f1)"
	echo "build-image.sh: $name (linux/$arch): $((size / 1000 / 1000)) MB ($size bytes, $((compressed / 1000 / 1000)) MB compressed)" >&2
	if ((size > limit)); then
		echo "build-image.sh: $name for $arch is over the $((limit / 1000 / 1000)) MB target" >&2
		exit 1
	fi
	images+=("$image")
done

mkdir -p "$(dirname "$archive")"
rm -f "$archive"
if ((${#images[@]} == 1)); then
	quietly push "$name" "docker-archive:$archive:$name"
else
	quietly manifest create "$name"
	for image in "${images[@]}"; do
		quietly manifest add "$name" "containers-storage:$image"
	done
	quietly manifest push --all --format oci "$name" "oci-archive:$archive:$name"
	# the archive holds one index naming each architecture's image
	platforms="$(tar -xOf "$archive" index.json | python3 -c '
import json, sys, tarfile
index = json.load(sys.stdin)["manifests"]
assert len(index) == 1, index
tar = tarfile.open(sys.argv[1])
blob = lambda d: json.load(tar.extractfile("blobs/" + d.replace(":", "/")))
listed = blob(index[0]["digest"])
assert listed["mediaType"] == "application/vnd.oci.image.index.v1+json", listed["mediaType"]
print(",".join(sorted(m["platform"]["architecture"] for m in listed["manifests"])))
' "$archive")"
	want="$(printf '%s\n' "${arches[@]}" | sort | paste -sd,)"
	if [[ "$platforms" != "$want" ]]; then
		echo "build-image.sh: the index in $archive lists $platforms, not $want" >&2
		exit 1
	fi
fi
echo "build-image.sh: $name (${arches[*]}) built in $((SECONDS - start)) s: $archive" >&2
