# The front door: `make demo` runs the pipeline locally, `make test` runs every test.
# Both create their own virtual environment first (.venv, Python 3.13 like the Lambda runtime).
SHELL := /bin/bash
PYTHON ?= $(firstword $(wildcard /root/.pyenv/versions/3.13.*/bin/python3.13) $(shell command -v python3.13) python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
LINT_VENV := .venv-lint
LINTERS := $(LINT_VENV)/bin/checkov
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help deps demo test lint unit integration contract validate containers container soak outage bench scale iam iam-deps package clean

help:  ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## / { printf "make %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

deps: $(STAMP)  ## create .venv (Python 3.13) with the dev and test dependencies

$(STAMP): requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(SAM):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0

# Template scanners live apart: their pinned dependencies clash with the SAM CLI's.
$(LINTERS):
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet checkov==3.3.30 cfn-lint==1.58.0 cfn-lint-serverless==0.3.6

# The IAM policy evaluator `make iam` and the integration tests use (npm, pinned by its lock file).
IAM_EVALUATOR := scripts/iam/node_modules/.installed-stamp
$(IAM_EVALUATOR): scripts/iam/package.json scripts/iam/package-lock.json
	cd scripts/iam && npm ci --silent --no-audit --no-fund
	touch $@

iam-deps: $(IAM_EVALUATOR)  ## install the IAM policy evaluator (npm ci in scripts/iam)

demo: deps  ## the whole pipeline locally on a scripted mix (no AWS, no network)
	$(PY) -m videodb_retry_local.commands.demo $(DEMO_ARGS)

test: lint iam-deps  ## everything CI runs: make lint, then every test
	$(PY) -m pytest $(PYTEST_ARGS)

# Gates: sam validate --lint, cfn-lint (with AWS's serverless rules), checkov, ruff (lint + format), mypy.
lint: deps $(SAM) $(LINTERS)  ## sam validate --lint, cfn-lint, checkov, ruff, mypy, import-linter
	VENV=$(VENV) SAM=$(SAM) LINT_VENV=$(LINT_VENV) bash scripts/lint.sh

unit: deps  ## unit tests only (no network, no AWS)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: deps iam-deps  ## moto + sandbox + the state machine executing
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

contract: deps  ## sandbox answers against the VideoDB OpenAPI spec
	$(PY) -m pytest tests/contract $(PYTEST_ARGS)

validate: $(SAM)  ## sam validate --lint
	$(SAM) validate --lint --region $(AWS_DEFAULT_REGION)

# Real containers for `sam local invoke` (tests/container): a Docker engine and the Lambda
# base image built offline. Without them the container tests skip (CI requires them).
containers:  ## start the Docker engine and build the Lambda image offline
	bash scripts/container/docker-up.sh
	bash scripts/container/lambda-image.sh

container: deps $(SAM) containers  ## sam local invoke of every events/ payload in real containers
	VIDEODB_RETRY_REQUIRE_CONTAINERS=1 $(PY) -m pytest tests/container $(PYTEST_ARGS)

# The capacity model of issue 20: the deployed stack at AWS scale, in virtual time (SimPy).
scale: deps  ## capacity model: every scenario at AWS scale (tables, bench/scale.json, plots)
	$(PY) -m videodb_retry_local.load.capacity $(SCALE_ARGS)

# The full soak (10,000 messages, faults and duplicates injected); make test runs a small one.
soak: deps  ## 10,000 messages with faults and duplicates, exact accounting
	$(PY) -m videodb_retry_local.load.soak $(SOAK_ARGS)

# A long VideoDB outage replayed (time compressed), with and without the circuit breaker;
# make test runs a small one (tests/integration/test_breaker.py).
outage: deps  ## a long VideoDB outage replayed, with and without the circuit breaker
	$(PY) -m videodb_retry_local.load.outage $(OUTAGE_ARGS)

# Performance figures, each a ratio to a baseline measured in the same run (bench/results.md).
bench: deps $(SAM)  ## performance figures against same-run baselines (bench/results.md)
	PATH="$(dir $(PYTHON)):$$PATH" $(PY) -m bench.run $(BENCH_ARGS)

# Least privilege by execution: every AWS call of the functions and the workflow, authorized
# against its own role from the SAM translation; any denial fails (tests/integration/test_iam.py).
iam: deps iam-deps  ## least privilege by execution: every AWS call against its own role
	$(PY) -m videodb_retry_local.commands.iam_pass $(IAM_ARGS)

# Artifacts for `sam publish` (Serverless Application Repository) or `sam deploy --template-file`:
# sam build, then sam package uploads the code, LICENSE and docs/sar/README.md to S3_BUCKET,
# a bucket of yours (docs/operating.md "Publishing to the Serverless Application Repository").
PACKAGED := .aws-sam/packaged.yaml
package: $(SAM)  ## sam build + sam package to S3_BUCKET (for sam publish)
	@test -n "$(S3_BUCKET)" || { echo "usage: make package S3_BUCKET=<your artifact bucket> [S3_PREFIX=...]" >&2; exit 2; }
	PATH="$(dir $(PYTHON)):$$PATH" $(SAM) build
	$(SAM) package --s3-bucket "$(S3_BUCKET)" $(if $(S3_PREFIX),--s3-prefix "$(S3_PREFIX)") \
		--region $(AWS_DEFAULT_REGION) --output-template-file $(PACKAGED)
	@echo "packaged: $(PACKAGED) (publish: $(SAM) publish --template $(PACKAGED) --region $(AWS_DEFAULT_REGION))"

clean:  ## remove the venvs, build output and the evaluator
	rm -rf $(VENV) $(SAM_VENV) $(LINT_VENV) .aws-sam .pytest_cache scripts/iam/node_modules
