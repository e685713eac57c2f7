#!/usr/bin/env bash
# Build one of the Go tools the tests use (helm, promtool) from its module in tools/NAME/
# (go.mod pins the version, go.sum the hashes, `tool` names the package) once, and cache it.
#
#   tools/build.sh helm|promtool
#
# The binary lives in ${IMAGESTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imagestream-operator}
# as NAME-<hash>, where <hash> covers go.mod, go.sum, the Go version and the build tags and
# flags. A warm call only hashes those and returns. The binary is also symlinked at
# <repo>/target/tools/NAME.
#
# stdout: the absolute path of the binary, and nothing else. Progress goes to stderr.
# Environment: GO (go binary; default: go on PATH, else /usr/local/go/bin/go).
# GOMODCACHE and GOCACHE are left at Go's defaults so they persist on the machine.
set -euo pipefail

name="${1:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
dir="$here/$name"
if [[ -z "$name" || ! -f "$dir/go.mod" ]]; then
	echo "usage: $0 helm|promtool" >&2
	exit 2
fi

GO="${GO:-}"
if [[ -z "$GO" ]]; then
	if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi
export GOTOOLCHAIN=local CGO_ENABLED=0

package="$(awk '$1 == "tool" { print $2; exit }' "$dir/go.mod")"
module_version() { awk -v m="$1" '$1 == m { print $2; exit }' "$dir/go.mod"; }
case "$name" in
helm)
	version="$(module_version helm.sh/helm/v4)"
	tags=""
	ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.metadata= -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
	;;
promtool)
	version="$(module_version github.com/prometheus/prometheus)"
	# promtool checks and tests rules; no service discovery plugin (cloud SDKs) is needed
	tags="remove_all_sd"
	ldflags="-s -w -X github.com/prometheus/common/version.Version=$version -X github.com/prometheus/common/version.Branch=HEAD"
	;;
*)
	echo "$0: no build recipe for $name" >&2
	exit 2
	;;
esac
if [[ -z "$package" || -z "$version" ]]; then
	echo "$0: $dir/go.mod names no tool package or version" >&2
	exit 1
fi

go_version="$("$GO" env GOVERSION)"
hash="$(
	{
		cat "$dir/go.mod" "$dir/go.sum"
		printf '%s\n%s\n%s\n' "$go_version" "$tags" "$ldflags"
	} | sha256sum | cut -c1-16
)"

cache="${IMAGESTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imagestream-operator}"
bin="$cache/$name-$hash"
mkdir -p "$cache"

link() {
	mkdir -p "$repo/target/tools"
	ln -sfn "$bin" "$repo/target/tools/.$name.$$"
	mv -Tf "$repo/target/tools/.$name.$$" "$repo/target/tools/$name"
	echo "$bin"
}

if [[ -x "$bin" ]]; then
	link
	exit 0
fi

# Serialise concurrent builds (parallel test processes may all call this).
exec 9>"$cache/$name.lock"
flock 9
if [[ -x "$bin" ]]; then
	link
	exit 0
fi

echo "build.sh: building $name $version with $go_version (a cold build takes a few minutes)" >&2
start=$SECONDS
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(
	cd "$dir"
	"$GO" build -trimpath -buildvcs=false -tags "$tags" -ldflags="$ldflags" -o "$tmp" "$package"
)
mv -f "$tmp" "$bin"
trap - EXIT
echo "build.sh: built $bin in $((SECONDS - start))s" >&2
# Keep the two newest binaries of this tool; older ones are from earlier versions.
ls -1t "$cache/$name"-???????????????? 2>/dev/null | tail -n +3 | xargs -r rm -f
link
