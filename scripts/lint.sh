#!/usr/bin/env bash
# The gates `make lint` runs (and so `make test` and CI): each one must pass, and each one's
# time is printed. Template checks run offline (checkov --skip-download fetches nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv} SAM=${SAM:-.venv-sam/bin/sam} LINT_VENV=${LINT_VENV:-.venv-lint}
CODE="layers/shared/videodb_retry functions"
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
  # Each function is a module named `app`: check them one at a time.
  "$VENV/bin/mypy" layers/shared/videodb_retry || return 1
  for handler in functions/*/app.py; do "$VENV/bin/mypy" "$handler" || return 1; done
}

gate "sam validate --lint" env SAM_CLI_TELEMETRY=0 "$SAM" validate --lint --region "${AWS_DEFAULT_REGION:-us-east-1}"
gate "cfn-lint" "$LINT_VENV/bin/cfn-lint" template.yaml
gate "checkov (cloudformation)" "$LINT_VENV/bin/checkov" -f template.yaml --framework cloudformation \
  --compact --quiet --skip-download
# shellcheck disable=SC2086  # CODE is a list of paths
gate "ruff check" "$VENV/bin/ruff" check $CODE
# shellcheck disable=SC2086
gate "ruff format --check" "$VENV/bin/ruff" format --check $CODE
gate "mypy" mypy_each

if ((${#failed[@]})); then
  echo "lint: failed gates: ${failed[*]}" >&2
  exit 1
fi
