# modelyard — every target here is what CI runs; `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= deploy/config.example.yaml
LISTEN ?= 127.0.0.1:50051

.PHONY: help install serve test test-rust test-py lint proto proto-check bench-core clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml Cargo.toml $(shell find router_core/src -name '*.rs' 2>/dev/null) router_core/Cargo.toml
	@bash scripts/ensure-sqlite-dev.sh
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## create .venv and build modelyard (Rust core included) into it

serve: install ## run the service on the embedded store with the example config
	$(VENV)/bin/modelyard serve --config $(CONFIG) --listen $(LISTEN)

test: install ## install, then run every test and check (what CI runs)
	bash scripts/ensure-redis.sh
	$(MAKE) proto-check lint test-rust test-py

test-rust: ## Rust core tests (no Python)
	cargo test --manifest-path router_core/Cargo.toml --features front --quiet

test-py: install ## Python tests against real gRPC servers on loopback
	$(VENV)/bin/pytest -q

lint: install ## clippy, ruff, mypy, buf lint
	cargo clippy --manifest-path router_core/Cargo.toml --all-targets --quiet -- -D warnings
	cargo clippy --manifest-path router_core/Cargo.toml --features python,front --quiet -- -D warnings
	$(VENV)/bin/ruff check service tests bench
	$(VENV)/bin/mypy
	cd proto && ../$(VENV)/bin/buf lint

proto: ## regenerate Python code and stubs from proto/
	PATH=$(abspath $(VENV))/bin:$$PATH bash scripts/gen_proto.sh

proto-check: proto ## fail when the committed generated code differs from a fresh generation
	@git diff --exit-code -- service/modelyard/v1 || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- service/modelyard/v1)" || { echo "untracked generated files: run 'make proto' and commit"; git status --short -- service/modelyard/v1; exit 1; }

bench-core: install ## the routing core's Python-level benchmark
	$(PY) bench/core_bench.py

clean: ## remove build output and the virtual environment
	rm -rf target $(VENV) service/modelyard/_core*.so
