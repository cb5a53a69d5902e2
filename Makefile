# Tessera: `make synth` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENV ?= dev
CONFIG ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
CDK := node_modules/.bin/cdk

# Node 20 is end-of-life for jsii; silence its banner. No AWS look-ups or CLI phone-home at synth.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_EC2_METADATA_DISABLED := true
export CDK_DISABLE_CLI_TELEMETRY := true

CONTEXT := $(if $(CONFIG),-c config=$(CONFIG),-c env=$(ENV))

.PHONY: help setup synth test typecheck faults explore lint format check-config schema manifests prices bench lock clean

help:
	@echo "make synth [ENV=dev|prod] [CONFIG=path]  synthesize an environment into cdk.out/"
	@echo "make test                                run every check (lint, config, templates, cfn-lint, cdk-nag, checkov)"
	@echo "make faults                              the rollout fault matrix, 500 explored interleavings, the long scenarios and a 50-service synth (CI runs it)"
	@echo "make typecheck                           mypy alone (make test runs it too)"
	@echo "make explore                             5,000 explored interleavings with a new seed (a nightly job)"
	@echo "make check-config CONFIG=path            validate a config file without synthesizing"
	@echo "make schema                              regenerate config/schema.json from the config models"
	@echo "make manifests [ENV=dev]                 write the services' Kubernetes objects to build/manifests/<env>/"
	@echo "make prices                              refresh the on-demand price table from the AWS Price List API (needs credentials)"
	@echo "make lock                                re-pin requirements*.txt and every dependency, with hashes, in the lock files"
	@echo "make bench                               time a synth, Lambda cold imports, a 1 GiB upload and load, 1,000 artifact checks"

# Every dependency, direct or not, comes from a lock file with its hashes; pip refuses anything else.
$(VENV)/.installed: requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# checkov conflicts with the test dependencies (it pins packaging==23.2): it gets a venv of its own,
# built once and reused until requirements-checkov.txt changes.
$(CHECKOV_VENV)/.installed: requirements-checkov.lock
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-checkov.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed

synth: setup
	@# CDK's closing hint (to name a stack to print) is not for make's users: dropped, the exit status kept.
	set -o pipefail; $(CDK) synth --quiet --no-notices --no-version-reporting $(CONTEXT) 2>&1 \
		| sed '/^Supply a stack id/d'
	$(VENV)/bin/cfn-lint --config-file .cfnlintrc.yaml -- cdk.out/*.template.json
	@echo "templates in cdk.out/ are cfn-lint clean"

# What the type checker reads (strict for the Lambda packages, standard for the rest: pyproject.toml).
TYPED = lambda/rollout lambda/registry lambda/tessera_shared tessera_cli stacks tools model_loader

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy $(TYPED)
	$(PY) -m pytest -n 2 --dist loadfile

typecheck: setup
	$(PY) -m mypy $(TYPED)

faults: setup
	$(PY) -m pytest -n 2 -m "fault_matrix or long_scenario" tests -s

explore: setup
	TESSERA_EXPLORE_SEQUENCES=5000 TESSERA_EXPLORE_RANDOM=1 $(PY) -m pytest -m fault_matrix tests/rollout/test_interleavings.py -s

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

check-config: $(VENV)/.installed
	@$(PY) -m tools.check_config $(if $(CONFIG),$(CONFIG),config/$(ENV).yaml)

schema: $(VENV)/.installed
	$(PY) -m tools.write_config_schema
	$(PY) tools/write_manifest_schema.py

manifests: $(VENV)/.installed
	$(PY) -m tools.render_manifests $(ENV)

prices: $(VENV)/.installed
	$(PY) -m tools.refresh_prices

bench: setup
	$(PY) tools/bench_synth.py
	$(PY) tools/bench_lambda.py
	$(PY) tools/bench_upload.py
	$(PY) tools/bench_loader.py
	$(PY) tools/bench_register.py

# Direct dependencies are chosen in requirements*.txt; this resolves the rest and records every file's hash.
lock: $(VENV)/.installed
	$(PY) -m uv pip compile --quiet --python-version 3.11.7 --generate-hashes requirements-dev.txt -o requirements-dev.lock
	$(PY) -m uv pip compile --quiet --python-version 3.11.7 --generate-hashes requirements-checkov.txt -o requirements-checkov.lock

clean:
	rm -rf cdk.out build .pytest_cache .ruff_cache
