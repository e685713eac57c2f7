#!/usr/bin/env bash
# Builds the container image with buildah from the binary scripts/build-release.sh builds
# (the Dockerfile's final stage with --build-arg BINARY=prebuilt: no Docker engine, no image
# pull), starts the binary inside it, fails when the image is over 30 MB, and writes it as
# a docker-archive (for `docker load`, `podman load`, `kind load image-archive`, `skopeo copy`).
#
#   scripts/build-image.sh [NAME:TAG [ARCHIVE]]
#       default imagestream-operator:latest, $CARGO_TARGET_DIR/imagestream-operator-image.tar
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

name="${1:-imagestream-operator:latest}"
archive="${2:-${CARGO_TARGET_DIR:-target}/imagestream-operator-image.tar}"
limit=$((30 * 1000 * 1000))

work="$(mktemp -d "${TMPDIR:-/tmp}/imagestream-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/context"

# buildah's output (and its warnings about missing /etc/subuid ranges) only when it fails
quietly() {
	if ! buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@" \
		>"$work/buildah.log" 2>&1; then
		echo "build-image.sh: buildah $1 failed:" >&2
		cat "$work/buildah.log" >&2
		exit 1
	fi
}

start=$SECONDS
scripts/build-release.sh "$work/context" >/dev/null
cp /etc/ssl/certs/ca-certificates.crt "$work/context/"
quietly bud --isolation chroot --build-arg BINARY=prebuilt -f Dockerfile -t "$name" \
	"$work/context"

# the binary starts in the image, as the image's user, with nothing else there
quietly from --pull=never --name check "$name"
quietly run --isolation chroot check -- /imagestream-operator --help

# the size a registry stores, compressed and not
quietly push "$name" "dir:$work/compressed"
quietly push --disable-compression "$name" "dir:$work/raw"
size="$(du -sb "$work/raw" | cut -f1)"
compressed="$(du -sb "$work/compressed" | cut -f1)"
mkdir -p "$(dirname "$archive")"
rm -f "$archive"
quietly push "$name" "docker-archive:$archive:$name"
echo "build-image.sh: $name: $((size / 1000 / 1000)) MB ($size bytes, $((compressed / 1000 / 1000)) MB compressed), built in $((SECONDS - start)) s: $archive" >&2
if ((size > limit)); then
	echo "build-image.sh: $name is over the $((limit / 1000 / 1000)) MB target" >&2
	exit 1
fi
