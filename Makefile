# Sluice — the two commands that matter: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test tools build install lint fmt crds bench image install-yaml chaos fuzz

## Run the canary tour on the embedded cluster (builds first).
demo:
	$(CARGO) run --quiet --bin sluice -- demo

## The whole test suite: tools, format, lint, unit, property, CRD drift, e2e (real kubectl,
## real Prometheus). A tool that is missing is installed or named in a one-line failure.
test: tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --all-targets

## Install what the tests drive (kubectl, Prometheus, umoci, skopeo, Chromium, chromedriver,
## script) when it is missing.
tools:
	@e2e/tools.sh

## The long chaos run (docs/reliability.md): 100 canaries, 30 controller kills, 3 API-server
## restarts, ~7 % of the controller's writes faulted; zero invariant violations or it fails.
## Sized by SLUICE_CHAOS_ROLLOUTS, _KILLS, _RESTARTS, _WRITE_FAULTS, _SEED, _SPREAD_SECS and
## _DEADLINE_SECS. The short form (`chaos_short`) runs in `make test`.
chaos: tools
	$(CARGO) test --test e2e chaos_long -- --ignored --nocapture

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

## The fuzz targets at scale: FUZZ_CASES cases for each (`make test` runs ~100,000 in all, in
## the debug build). Optimised, with overflow checks on (docs/reliability.md).
FUZZ_CASES ?= 1000000
fuzz:
	SLUICE_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --profile fuzz -p sluice-engine -p sluice-controller --lib fuzz_

## Benchmarks (release build; see docs/performance.md). Not tests: nothing here asserts a time.
BENCH_OUT ?= target/bench
bench:
	mkdir -p $(BENCH_OUT)
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/planner.json planner
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/cluster.json cluster
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/controller-1000.json controller --rollouts 1000
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/analysis-1000.json analysis --runs 1000
	$(CARGO) run --release --quiet --bin sluice -- bench --json $(BENCH_OUT)/dashboard-1000.json dashboard --rollouts 1000

## The controller's container image as one OCI archive (also `docker load`-able), built without a
## container daemon or a base image: a release build, then crates/sluice-image packs the binary,
## the shared libraries ldd names and /etc/passwd for user 65532 (docs/operations.md). Dated and
## labelled by the commit, so the same commit gives the same image digest.
IMAGE_OUT ?= target/image
image:
	@e2e/tools.sh image
	@git diff --quiet HEAD -- || echo "make image: the work tree has uncommitted changes; the image's revision label names $$(git rev-parse --short HEAD)" >&2
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(CARGO) build --release --locked --bin sluice
	$(CARGO) run --release --locked --quiet -p sluice-image -- archive --out-dir $(IMAGE_OUT) \
	  --binary $$($(CARGO) metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')/release/sluice

## dist/install.yaml (CRDs + RBAC + controller) and dist/namespace-install.yaml, rendered from
## crds/ and manifests/ (a drift test fails until this is run after changing either).
install-yaml:
	SLUICE_UPDATE_DIST=1 $(CARGO) test -p sluice-controller --test manifests -- --exact dist_files_match_crds_and_manifests
