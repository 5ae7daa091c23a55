#!/usr/bin/env bash
# The gates `make lint` runs (and so `make test` and CI): each one must pass, and each one's
# time is printed. Template checks run offline (checkov --skip-download fetches nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv} SAM=${SAM:-.venv-sam/bin/sam} LINT_VENV=${LINT_VENV:-.venv-lint}
# Every Python file in the repository lives under one of these (tests/unit/test_lint_scope.py
# fails when one does not): all of them get the same ruff rules and mypy.
CODE="layers functions src bench tests scripts"
failed=()

gate() {
  local name=$1; shift
  local started=$SECONDS
  if "$@"; then
    printf 'gate %-28s passed  (%d s)\n' "$name" $((SECONDS - started))
  else
    printf 'gate %-28s FAILED  (%d s)\n' "$name" $((SECONDS - started))
    failed+=("$name")
  fi
}

mypy_each() {
  # Each function is a module named `app`: check them one at a time; the layer (its package
  # and build script), then everything that runs beside it (local wing, CLI, bench, tests).
  "$VENV/bin/mypy" layers/shared || return 1
  for handler in functions/*/app.py; do "$VENV/bin/mypy" "$handler" || return 1; done
  "$VENV/bin/mypy" src bench tests scripts || return 1
}

gate "sam validate --lint" env SAM_CLI_TELEMETRY=0 "$SAM" validate --lint --region "${AWS_DEFAULT_REGION:-us-east-1}"
gate "cfn-lint" "$LINT_VENV/bin/cfn-lint" template.yaml
# AWS's serverless rules for cfn-lint (cfn-lint-serverless, pinned in the Makefile); each skip
# is justified in the resource's cfn-lint metadata.
gate "cfn-lint serverless rules" "$LINT_VENV/bin/cfn-lint" template.yaml -a cfn_lint_serverless.rules
gate "checkov (cloudformation)" "$LINT_VENV/bin/checkov" -f template.yaml --framework cloudformation \
  --compact --quiet --skip-download
# shellcheck disable=SC2086  # CODE is a list of paths
gate "ruff check" "$VENV/bin/ruff" check $CODE
# shellcheck disable=SC2086
gate "ruff format --check" "$VENV/bin/ruff" format --check $CODE
gate "mypy" mypy_each
# The layering (contracts in pyproject.toml [tool.importlinter]): the runtime's rules, adapters
# and steps, the local wing's folders, no cycle. The packages live in three places.
gate "import-linter" env PYTHONPATH=layers/shared:src:. "$VENV/bin/lint-imports" --no-cache --no-logo

if ((${#failed[@]})); then
  echo "lint: failed gates: ${failed[*]}" >&2
  exit 1
fi
