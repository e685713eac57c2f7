# The two entry points are `make demo` (the operator on a local cluster and registry) and
# `make test` (every test tier). Both install what they need first (scripts/setup.sh).

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/.cargo/bin

CARGO ?= cargo

.PHONY: test setup lint unit harness bench crds build release

## test: install prerequisites, lint, then run unit, registry and cluster tests
test: setup lint harness
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
