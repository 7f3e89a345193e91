# cutover's entry points. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: help setup test fmt fmt-check lint lint-build lib-alone unit unit-linted workflows terraform-check bench bench-digest bench-engine bench-s3 bench-freeze demo rehearse-aws failures-neo4j

help:
	@echo "make setup  create .venv with moto, ArcadeDB, awscli, shellcheck (scripts/setup.sh)"
	@echo "make test   setup, then format check, clippy and every test"
	@echo "make bench  setup, then the digest, engine, object store and freeze-window benchmarks"
	@echo "make bench-freeze  the freeze window of a blue-green of a 1M-node ledger against a bare neo4j-admin dump + load"
	@echo "make bench-engine  the engine benchmark alone (run, status, resume, plan)"
	@echo "make bench-s3  the object store benchmark alone (1 GiB to and from moto with SHA-256)"
	@echo "make demo   setup, then the local blue-green demo"
	@echo "make rehearse-aws  blue-green on an aws environment against the rehearsal rig (docs/rehearsal.md)"
	@echo "make failures-neo4j  every injected blue-green failure on real Neo4j (make test runs most on ArcadeDB)"
	@echo "make fmt    format the code;  make lint  clippy with warnings as errors"

setup:
	@scripts/setup.sh

fmt:
	$(CARGO) fmt

# A gate whose tool is missing fails loudly (`make test` still runs the others, then fails).
missing = { echo "!! MISSING GATE: $(1) is not installed: $(2)" >&2; exit 1; }

fmt-check:
	@echo "== cargo fmt --check"
	@$(CARGO) fmt --version >/dev/null 2>&1 || $(call missing,rustfmt,rustup component add rustfmt)
	@$(CARGO) fmt --check

lint:
	@echo "== cargo clippy --all-targets -- -D warnings"
	@$(CARGO) clippy --version >/dev/null 2>&1 || $(call missing,clippy,rustup component add clippy)
	@$(CARGO) clippy --quiet --all-targets -- -D warnings

unit:
	@echo "== cargo test"
	@$(CARGO) test --quiet

# `make test` compiles the code once. clippy's lints run inside the test build: cargo runs
# clippy-driver (a full rustc with clippy's lints) on cutover's own crates, exactly as
# `cargo clippy` does, but with code generation, so the tests use the same artifacts and CI
# does not pay for a second, check-only compilation of the AWS SDK (≈ 6 min on 2 cores).
# `-D warnings` as in `make lint`; a lint failure therefore also stops the build the tests
# need, and both gates report it.
# Without clippy the tests still build and run (plain rustc) and lint-build fails loudly.
HAVE_CLIPPY := $(shell clippy-driver --version >/dev/null 2>&1 && echo yes)
LINTED := $(if $(HAVE_CLIPPY),RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-Dwarnings__CLIPPY_HACKERY__)

lint-build:
	@echo "== clippy -D warnings on every target, compiled with the tests (cargo test --no-run --all-targets)"
	@[ -n "$(HAVE_CLIPPY)" ] || $(call missing,clippy,rustup component add clippy)
	@$(LINTED) $(CARGO) test --quiet --no-run --all-targets

# The library (and its unit tests) without the `cli` feature: clap, indicatif and
# tracing-subscriber are then absent, so any use of them below src/cli fails to compile.
# Reuses the test build's dependencies; only cutover itself is compiled again.
lib-alone:
	@echo "== the library without the command line (cargo test --lib --no-default-features --no-run)"
	@$(LINTED) $(CARGO) test --quiet --lib --no-default-features --no-run

unit-linted:
	@echo "== cargo test"
	@$(LINTED) $(CARGO) test --quiet

# The GitHub workflows: actionlint (syntax, expressions, shellcheck of run: blocks) and
# zizmor (security audit, offline). Both come from requirements.txt into .venv.
workflows:
	@echo "== actionlint + zizmor (.github/)"
	@.venv/bin/actionlint
	@.venv/bin/zizmor --offline --quiet .github

# terraform/ checked statically: no provider can be downloaded here, so no init/validate.
terraform-check:
	@echo "== terraform fmt -check -recursive terraform/ ; checkov -d terraform"
	@command -v terraform >/dev/null 2>&1 || $(call missing,terraform,see scripts/setup-terraform.sh)
	@TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive terraform/
	@.venv/scan/bin/checkov -d terraform --framework terraform --quiet --compact --skip-download

# Every gate runs even when an earlier one fails (-k); any failure or missing tool fails
# the whole target, named in the lines above.
# Setup (downloads) runs in the background while the code compiles; the gates that need
# what it installs run after it.
test:
	@mkdir -p .tools; failed=0; \
	echo "== setup (scripts/setup.sh) runs while the code compiles; its output follows the build"; \
	scripts/setup.sh >.tools/setup.log 2>&1 & setup=$$!; \
	$(MAKE) --no-print-directory -k fmt-check lint-build lib-alone || failed=1; \
	if wait $$setup; then cat .tools/setup.log; else cat .tools/setup.log; echo "== setup FAILED" >&2; failed=1; fi; \
	$(MAKE) --no-print-directory -k workflows terraform-check unit-linted || failed=1; \
	if [ $$failed -ne 0 ]; then echo "== make test FAILED: see the gates above" >&2; exit 1; fi
	@echo "== all checks passed"

# The AWS rehearsal (docs/rehearsal.md): runbooks/blue-green.toml through the real cutover
# binary on environments/rehearsal-aws.toml, against moto with the stand-in SSM agent and
# real Neo4j on rehearsal hosts, under a live writer. About 3 minutes (four Neo4j servers),
# not part of `make test` (at its 20-minute budget): the feature `rehearsal` compiles it
# in (and lints it).
rehearse-aws: setup
	$(LINTED) $(CARGO) test --features rehearsal --test it aws_rehearsal -- --nocapture

# Every injected failure of the blue-green failure test on real Neo4j, one `cutover run`
# each (about 5 minutes alone). `make test` runs the Neo4j-only one (an artifact whose
# checksum matches but whose store does not) on Neo4j and the engine-independent ones
# on ArcadeDB, for its 20-minute budget (docs/neo4j.md).
# The failures are injected by the test build of the CLI (examples/cutover_faults), which
# `cargo test --no-run` builds and `--test it` alone does not.
failures-neo4j: setup
	$(LINTED) $(CARGO) test --quiet --no-run
	CUTOVER_IT_NEO4J_ALL_FAILURES=1 $(LINTED) $(CARGO) test --test it local_bluegreen::neo4j_a_failure -- --nocapture

bench: bench-digest bench-engine bench-s3 bench-freeze

bench-digest: setup
	$(CARGO) bench --bench digest

# BENCH_PROFILE=dev measures the unoptimised binary without an optimised build.
bench-engine:
	$(CARGO) bench --bench engine $(if $(BENCH_PROFILE),--profile $(BENCH_PROFILE))

# BENCH_S3_MIB=<MiB> for another artifact size (default 1024).
bench-s3: setup
	$(CARGO) bench --bench s3 $(if $(BENCH_PROFILE),--profile $(BENCH_PROFILE))

# The freeze window of a real blue-green against a bare neo4j-admin dump + load
# (bench/freeze.rs, run by the local_env example). BENCH_FREEZE_MEMBERS=<members>[,…] for
# other sizes or the scale curve (default 131000: about 1M ledger nodes; its load alone
# takes about 6 minutes).
FREEZE_PROFILE := $(or $(BENCH_PROFILE),bench)
FREEZE_DIR := $(or $(CARGO_TARGET_DIR),target)/$(if $(filter dev test,$(FREEZE_PROFILE)),debug,release)
bench-freeze: setup
	$(CARGO) build --quiet --profile $(FREEZE_PROFILE) --bin cutover --example local_env
	$(FREEZE_DIR)/examples/local_env bench-freeze

demo: setup
	@if [ -x scripts/demo.sh ]; then \
		scripts/demo.sh; \
	else \
		echo "demo: scripts/demo.sh does not exist yet; the demo arrives with the local provider" >&2; \
		exit 1; \
	fi
