#!/usr/bin/env bash
# The demo inside e2e/with-cluster.sh (KUBECONFIG is the cluster's admin); see scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
demo_started=$EPOCHREALTIME
bin="${DEMO_BIN:-${CARGO_TARGET_DIR:-target}/debug/imagestream-operator}"
work="$(mktemp -d "${TMPDIR:-/tmp}/imagestream-demo.XXXXXX")"
ns=imagestream-operator
cleanup() {
	trap '' INT TERM # a second Ctrl-C or SIGTERM must not cut the clean-up short
	# every background job of this script (the registry, the operator, the idle sleep below),
	# from the job table: a signal handled right after `cmd &` runs this before the next line
	# could have noted $! anywhere (an idle `sleep 3600` was left behind that way)
	local running
	running="$(jobs -p)"
	if [[ -n "$running" ]]; then
		# shellcheck disable=SC2086 # one pid a word
		kill -TERM $running 2>/dev/null || true
	fi
	wait
	[[ "${DEMO_KEEP:-}" == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
# a signal during the set-up still runs the clean-up (a signal without a trap would not)
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "a local registry with sample images"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
registry="127.0.0.1:$port"
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: "$registry"
  secret: demo-not-a-secret
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
for _ in $(seq 50); do curl -sf "http://$registry/v2/" >/dev/null && break; sleep 0.1; done

# push_image REPO TAG TEXT: a one-layer OCI image whose only file says TEXT
push_image() {
	local repo=$1 tag=$2 text=$3 dir
	dir="$(mktemp -d "$work/img.XXXXXX")"
	printf '%s\n' "$text" >"$dir/hello.txt"
	tar -C "$dir" --mtime=@0 --owner=0 --group=0 -cf "$dir/layer.tar" hello.txt
	local diff_id="sha256:$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)"
	gzip -n -c "$dir/layer.tar" >"$dir/layer.tgz"
	printf '{"architecture":"amd64","os":"linux","config":{"Labels":{"demo":"%s"}},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
		"$text" "$diff_id" >"$dir/config.json"
	local blob digest size
	for blob in layer.tgz config.json; do
		digest="sha256:$(sha256sum "$dir/$blob" | cut -d' ' -f1)"
		location=$(curl -sfi -X POST "http://$registry/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
		case "$location" in http*) ;; *) location="http://$registry$location" ;; esac
		sep='?'; [[ "$location" == *\?* ]] && sep='&'
		curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$dir/$blob" \
			"$location${sep}digest=$digest" >/dev/null
	done
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
		"$(sha256sum "$dir/config.json" | cut -d' ' -f1)" "$(stat -c %s "$dir/config.json")" \
		"$(sha256sum "$dir/layer.tgz" | cut -d' ' -f1)" "$(stat -c %s "$dir/layer.tgz")" >"$dir/manifest.json"
	curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		--data-binary "@$dir/manifest.json" "http://$registry/v2/$repo/manifests/$tag" >/dev/null
	echo "pushed $registry/$repo:$tag"
}
push_image demo/hello v1 "hello, world"
push_image demo/hello v2 "hello again"
push_image demo/hello latest "hello, world"
push_image demo/tools 1.0 "tools one"

say "CRDs, configuration and the operator's roles"
kubectl apply $(printf -- "-f %s " crds/*.io.yaml) >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl create serviceaccount imagestream-operator -n "$ns" >/dev/null
kubectl apply -f deploy/rbac.yaml >/dev/null
kubectl apply -n "$ns" -f deploy/admission-rbac.yaml >/dev/null
for file in deploy/rbac.yaml deploy/admission-rbac.yaml; do
	for role in $(kubectl get -n "$ns" -f "$file" -o name); do
		case "$role" in
		clusterrole.*) kubectl create clusterrolebinding "${role##*/}" --clusterrole="${role##*/}" \
			--serviceaccount="$ns:imagestream-operator" >/dev/null ;;
		role.*) kubectl create rolebinding -n "$ns" "${role##*/}" --role="${role##*/}" \
			--serviceaccount="$ns:imagestream-operator" >/dev/null ;;
		esac
	done
done
kubectl apply -f config/image-import-config.yaml >/dev/null
# the roles for users (aggregated into view, edit and admin where kube-controller-manager runs)
kubectl apply -f deploy/user-roles.yaml >/dev/null

say "the operator, as a local process under its ServiceAccount"
token=$(kubectl create token imagestream-operator -n "$ns" --duration=24h)
server=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$work/ca.crt"
KUBECONFIG="$work/operator.kubeconfig" kubectl config set-cluster demo --server="$server" \
	--certificate-authority="$work/ca.crt" --embed-certs >/dev/null
KUBECONFIG="$work/operator.kubeconfig" kubectl config set-credentials operator --token="$token" >/dev/null
KUBECONFIG="$work/operator.kubeconfig" kubectl config set-context demo --cluster=demo --user=operator >/dev/null
KUBECONFIG="$work/operator.kubeconfig" kubectl config use-context demo >/dev/null
webhook_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KUBECONFIG="$work/operator.kubeconfig" RUST_LOG="${RUST_LOG:-info}" "$bin" run --namespace "$ns" \
	--webhook-url "https://127.0.0.1:$webhook_port" --webhook-port "$webhook_port" \
	--metrics-port "$metrics_port" --no-leader-elect >"$work/operator.log" 2>&1 &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$metrics_port/readyz" >/dev/null && break; sleep 0.2; done
# the webhooks are registered once the operator wrote its configurations
for _ in $(seq 100); do kubectl get mutatingwebhookconfiguration imagestream-operator >/dev/null 2>&1 && break; sleep 0.2; done
echo "operator log: $work/operator.log; metrics: http://127.0.0.1:$metrics_port/metrics"

say "the example streams"
sed "s/REGISTRY/$registry/g" config/examples/streams.yaml | kubectl apply -n default -f -
for _ in $(seq 150); do
	imported=$(kubectl get is -n default -o jsonpath='{range .items[*]}{range .status.tags[*]}{.items[0].image}{"\n"}{end}{end}' | grep -c sha256 || true)
	[[ "$imported" -ge 4 ]] && break
	sleep 0.2
done
kubectl get is,istag -n default
[[ "$imported" -ge 4 ]] || { echo "only $imported of 4 tags imported within 30 s; operator log:"; tail -n 30 "$work/operator.log"; exit 1; }

say "latest moves to a new image; an ImageStreamImport (oc import-image) records it in the history"
push_image demo/hello latest "hello, new world"
cat <<YAML | kubectl create -n default -f - >/dev/null
apiVersion: image.openshift.io/v1
kind: ImageStreamImport
metadata:
  name: hello
spec:
  import: true
  images:
    - from:
        kind: DockerImage
        name: $registry/demo/hello:latest
      to:
        name: latest
      importPolicy:
        insecure: true
YAML
moved=""
for _ in $(seq 150); do
	n=$(kubectl get is hello -n default -o jsonpath='{.status.tags[?(@.tag=="latest")].items[*].image}' | wc -w)
	if [[ "$n" -ge 2 ]]; then moved=1; break; fi
	sleep 0.2
done
[[ -n "$moved" ]] || { echo "no new history entry within 30 s; operator log:"; tail -n 30 "$work/operator.log"; exit 1; }
sleep 1  # the views follow the stream within a moment
kubectl get itag -n default
kubectl get is hello -n default -o jsonpath='{range .status.tags[*]}{.tag}{": "}{range .items[*]}{.image}{" "}{end}{"\n"}{end}'

# how long it took to get here (scripts/demo.sh passes the times of its installs and builds)
up=$EPOCHREALTIME
took() { awk -v a="$1" -v b="$2" 'BEGIN { s = b - a; if (s < 60) printf "%.1f s", s; else printf "%d min %02d s", s / 60, s % 60 }'; }
if [[ -n "${DEMO_STARTED:-}" ]]; then
	say "up $(took "$DEMO_STARTED" "$up") after make demo started"
	printf '  %-58s %s\n' \
		"installs (scripts/setup.sh demo)" "$(took "$DEMO_STARTED" "$DEMO_INSTALLED")" \
		"cluster harness build (Go; side by side with the next)" "$(took $DEMO_HARNESS_BUILD)" \
		"operator build (Rust)" "$(took $DEMO_OPERATOR_BUILD)" \
		"both builds" "$(took "$DEMO_INSTALLED" "$DEMO_BUILT")" \
		"start-up (cluster, registry, operator, streams imported)" "$(took "$DEMO_BUILT" "$up")"
else
	say "up $(took "$demo_started" "$up") after the cluster was ready"
fi

# set before saying so: from here a Ctrl-C or SIGTERM is how the demo is meant to end
trap 'echo; echo "stopping"; exit 0' INT TERM
say "running"
echo "export KUBECONFIG=$KUBECONFIG   # in another shell; Ctrl-C here stops everything"
if [[ "${DEMO_EXIT:-}" == 1 ]]; then exit 0; fi
while true; do
	# in the background so that a signal ends `wait` at once (bash runs traps only between
	# commands); the clean-up ends it with the rest
	sleep 3600 &
	wait $!
done
