# The two entry points are `make demo` (the operator on a local cluster and registry) and
# `make test` (every test tier). Both install what they need first: the demo only its own few
# things (scripts/setup.sh demo), the tests everything (scripts/setup.sh).

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/.cargo/bin

CARGO ?= cargo

.PHONY: demo test setup lint unit harness tools deploy bench scale calibrate crds build release release-static image image-multiarch

## demo: the operator's main job on an embedded default (a local cluster, registry and sample
## images); keeps running until Ctrl-C. Prints how long its installs, builds and start-up took.
demo:
	scripts/demo.sh

## test: install prerequisites, lint, build the container image's static binary and the image
## itself (so neither can rot), then run unit, registry and cluster tests (the chart's and the
## alerts' with helm and promtool among them)
test: setup lint harness tools release-static image
	$(CARGO) test --doc --quiet
	e2e/with-cluster.sh $(CARGO) nextest run --lib --bins --tests --profile ci
	# a small version of the scale benchmark (dev build, on a cluster of its own: it sets the
	# cluster-wide ImageImportConfig), so it cannot rot; fails when an invariant breaks
	e2e/with-cluster.sh $(CARGO) bench --profile dev --bench scale -- --streams 200 --namespaces 4 --repos 20 --interval 20
	# the quick start itself, scripted: fails unless the example tags import and a moved tag
	# gets its history entry
	DEMO_EXIT=1 scripts/demo.sh

setup:
	scripts/setup.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings

## unit: the pure tests only (no registry, no cluster)
unit:
	$(CARGO) nextest run --lib

harness:
	e2e/cluster/build.sh >/dev/null

## tools: helm and promtool from their Go modules (tools/build.sh, cached like the harness:
## minutes cold, instant warm), before the tests that run them
tools:
	tools/build.sh helm >/dev/null
	tools/build.sh promtool >/dev/null

## deploy: render deploy/ from the Helm chart (charts/imagestream-operator)
deploy:
	scripts/render-deploy.sh

## bench: install prerequisites, then run every benchmark (benches/*.rs: programs that print
## figures and exit non-zero when a target is missed) against the local registry and cluster
bench: setup
	e2e/with-cluster.sh $(CARGO) bench --no-fail-fast --bench controller_latency --bench import_traffic --bench triggers --bench image_lookup_latency --bench notifications

## scale: the scale benchmark (e2e/bench/scale.rs) with STREAMS streams (default 10000, 30+
## minutes), results into e2e/bench/results/ (JSON, and the markdown table of every run there)
STREAMS ?= 10000
INTERVAL ?= 120
scale: setup
	e2e/with-cluster.sh $(CARGO) bench --bench scale -- --streams $(STREAMS) --interval $(INTERVAL) --out e2e/bench/results

## calibrate: the apiserver's own write rates for a first import's objects (e2e/bench/calibrate.rs),
## then the scale benchmark with STREAMS streams divided by them (issue 17), on one cluster;
## results (JSON, calibrate.md, scale.md) into e2e/bench/results/
calibrate: setup
	e2e/with-cluster.sh bash -c '$(CARGO) bench --bench calibrate -- --streams $(STREAMS) --out e2e/bench/results && $(CARGO) bench --bench scale -- --streams $(STREAMS) --interval $(INTERVAL) --out e2e/bench/results --calibration e2e/bench/results/calibrate-$(STREAMS).json'

## fuzz: every cargo-fuzz target for FUZZ_SECONDS each (default 60); needs nightly and
## cargo-fuzz, so it is not part of `make test`
.PHONY: fuzz
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

## crds: regenerate crds/ from the Rust types
crds:
	$(CARGO) run --quiet -- crds --output-dir crds

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## release-static: the binary the container image ships (static glibc, stripped), built by the
## script the Dockerfile runs; prints its size and build time
release-static:
	scripts/build-release.sh >/dev/null

## image: the container image from that binary with buildah (the Dockerfile's final stage, no
## pull), checked to start and to stay under 30 MB, written as a docker-archive into
## $(CARGO_TARGET_DIR) (default target/); IMAGE=name:tag names it
IMAGE ?= imagestream-operator:latest
image:
	scripts/build-image.sh $(IMAGE)

## image-multiarch: the image for linux/amd64 and linux/arm64 as one OCI image index, written
## as an oci-archive into $(CARGO_TARGET_DIR); arm64 is cross-built with Debian's Rust toolchain
## (scripts/cross-toolchain.sh) and checked under qemu-user. Not part of `make test`: a cold
## arm64 release build is a second release build
image-multiarch:
	scripts/build-image.sh --arch amd64,arm64 $(IMAGE)
