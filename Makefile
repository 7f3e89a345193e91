# cutover's entry points. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: help setup test fmt fmt-check lint unit workflows terraform-check bench bench-digest bench-engine demo

help:
	@echo "make setup  create .venv with moto, ArcadeDB, awscli, shellcheck (scripts/setup.sh)"
	@echo "make test   setup, then format check, clippy and every test"
	@echo "make bench  setup, then the digest and engine benchmarks"
	@echo "make bench-engine  the engine benchmark alone (run, status, resume, plan)"
	@echo "make demo   setup, then the local blue-green demo"
	@echo "make fmt    format the code;  make lint  clippy with warnings as errors"

setup:
	@scripts/setup.sh

fmt:
	$(CARGO) fmt

fmt-check:
	@echo "== cargo fmt --check"
	@$(CARGO) fmt --check

lint:
	@echo "== cargo clippy --all-targets -- -D warnings"
	@$(CARGO) clippy --quiet --all-targets -- -D warnings

unit:
	@echo "== cargo test"
	@$(CARGO) test --quiet

# The GitHub workflows: actionlint (syntax, expressions, shellcheck of run: blocks) and
# zizmor (security audit, offline). Both come from requirements.txt into .venv.
workflows:
	@echo "== actionlint + zizmor (.github/)"
	@.venv/bin/actionlint
	@.venv/bin/zizmor --offline --quiet .github

# terraform/ checked statically: no provider can be downloaded here, so no init/validate.
terraform-check:
	@echo "== terraform fmt -check -recursive terraform/ ; checkov -d terraform"
	@TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive terraform/
	@.venv/scan/bin/checkov -d terraform --framework terraform --quiet --compact --skip-download

test: setup fmt-check lint workflows terraform-check unit
	@echo "== all checks passed"

bench: bench-digest bench-engine

bench-digest: setup
	$(CARGO) bench --bench digest

# BENCH_PROFILE=dev measures the unoptimised binary without an optimised build.
bench-engine:
	$(CARGO) bench --bench engine $(if $(BENCH_PROFILE),--profile $(BENCH_PROFILE))

demo: setup
	@if [ -x scripts/demo.sh ]; then \
		scripts/demo.sh; \
	else \
		echo "demo: scripts/demo.sh does not exist yet; the demo arrives with the local provider" >&2; \
		exit 1; \
	fi
