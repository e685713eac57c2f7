# The two entry points are `make demo` (the operator on a local cluster and registry) and
# `make test` (every test tier). Both install what they need first (scripts/setup.sh).

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/.cargo/bin

CARGO ?= cargo

.PHONY: demo test setup lint unit harness bench crds build release release-static image

## demo: the operator's main job on an embedded default (a local cluster, registry and sample
## images); keeps running until Ctrl-C
demo:
	scripts/demo.sh

## test: install prerequisites, lint, build the container image's static binary and the image
## itself (so neither can rot), then run unit, registry and cluster tests
test: setup lint harness release-static image
	$(CARGO) test --doc --quiet
	e2e/with-cluster.sh $(CARGO) nextest run --lib --bins --tests --profile ci

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

## bench: install prerequisites, then run every benchmark (benches/*.rs: programs that print
## figures and exit non-zero when a target is missed) against the local registry and cluster
bench: setup
	e2e/with-cluster.sh $(CARGO) bench --no-fail-fast --bench '*'

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
