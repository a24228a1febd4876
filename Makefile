# segcast: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
# Tests share one local stack per test binary; a few campaigns at a time keep 2 cores and the emulators busy.
TEST_THREADS ?= 4

.PHONY: test demo bench memory fuzz chaos release install lint build stack-up stack-down

## test: install what is missing, lint, build, and run every test (unit, emulator integration, end to end).
test: install lint build
	$(CARGO) test --workspace -- --test-threads=$(TEST_THREADS)

## demo: run a whole campaign on the local stack and print its summary (DEMO_USERS=N to change its size).
demo: install build
	./target/debug/segcast-demo

## release: the one release build bench, memory and chaos share. One cargo invocation for all three: with
## another (e.g. without --examples, whose dev-dependencies change the features), chaos after bench would
## recompile much of the tree.
RELEASE_DIR ?= $(or $(CARGO_TARGET_DIR),target)/release
release:
	$(CARGO) build --release --workspace --bins --examples

## bench: speed, rate-limit accuracy and memory on the local stack, release build (QUICK=1: a few minutes).
## Prints a table and one JSON object per scenario; results and charts go to bench-results/.
bench: install release
	$(RELEASE_DIR)/segcast-bench $(if $(filter-out 0,$(QUICK)),--quick) $(BENCH_ARGS)

## memory: only the memory scenario of the bench (peak RSS of scheduler and handler per segment size).
memory: install release
	$(RELEASE_DIR)/segcast-bench --only memory $(BENCH_ARGS)

## fuzz: the cargo-fuzz targets of fuzz/ (push decoder, LINE message validator, segment SQL pre-parse, export
## reader), FUZZ_SECONDS each (default 20); installs cargo-fuzz into .local/ if missing. By hand, not in make test
## (its property tests cover the same four): see docs/security.md.
FUZZ_SECONDS ?= 20
fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## chaos: segcast's invariants under random faults on the local stack, release build (docs/reliability.md):
## two campaigns (200,000 multicast + 20,000 push) while processes are killed and LINE fails; one JSON line.
## SEED=N replays a run; CHAOS_ARGS="--multicast N --push N" changes the sizes. Not part of `make test`.
chaos: install release
	$(RELEASE_DIR)/segcast-chaos $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

## install: the project-local emulator environment (.local/); quick when already installed.
install:
	$(CARGO) run -q -p devstack --bin segcast-stack -- install

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build:
	$(CARGO) build --workspace --bins

## stack-up / stack-down: a long-running dev stack (source .local/stacks/dev/env to use it).
stack-up: install
	$(CARGO) run -q -p devstack --bin segcast-stack -- up --name dev
stack-down:
	$(CARGO) run -q -p devstack --bin segcast-stack -- down --name dev
