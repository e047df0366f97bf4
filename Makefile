# Sluice — the two commands that matter: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test tools build install lint fmt crds bench

## Run the canary tour on the embedded cluster (builds first).
demo:
	$(CARGO) run --quiet --bin sluice -- demo

## The whole test suite: tools, format, lint, unit, property, CRD drift, e2e (real kubectl,
## real Prometheus). A tool that is missing is installed or named in a one-line failure.
test: tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --all-targets

## Install what the end-to-end tests drive (kubectl, Prometheus) when it is missing.
tools:
	@e2e/tools.sh

build:
	$(CARGO) build --bin sluice

## Install `sluice` into $(PREFIX)/bin (default ~/.local/bin) with a `kubectl-sluice` link beside
## it, so `kubectl sluice ...` works once that directory is on PATH. INSTALL_FLAGS=--debug
## skips the optimised build.
PREFIX ?= $(HOME)/.local
INSTALL_FLAGS ?=
install:
	$(CARGO) install --locked --path . --root $(PREFIX) $(INSTALL_FLAGS)
	ln -sf sluice $(PREFIX)/bin/kubectl-sluice
	@echo "installed $(PREFIX)/bin/sluice and $(PREFIX)/bin/kubectl-sluice; try: kubectl sluice list rollouts"

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Regenerate crds/*.yaml from the API types (the CRD drift test fails until this is run).
crds:
	SLUICE_UPDATE_CRDS=1 $(CARGO) test -p sluice-api --lib crds

## Benchmarks (release build; see docs/performance.md). Not tests: nothing here asserts a time.
BENCH_OUT ?= target/bench
bench:
	mkdir -p $(BENCH_OUT)
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/planner.json planner
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/cluster.json cluster
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/controller-1000.json controller --rollouts 1000
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/analysis-1000.json analysis --runs 1000
