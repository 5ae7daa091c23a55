"""`make lint` runs AWS's serverless rules for cfn-lint (cfn-lint-serverless), pinned like the
other scanners, and every check the template skips, for cfn-lint or checkov, says why."""

from __future__ import annotations

import re

from videodb_retry_local.stack.template import PROJECT_ROOT, load_document

LINT = (PROJECT_ROOT / "scripts" / "lint.sh").read_text(encoding="utf-8")
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
TEMPLATE_TEXT = (PROJECT_ROOT / "template.yaml").read_text(encoding="utf-8")


def test_lint_runs_the_serverless_rules_pinned():
    gates = [line for line in LINT.splitlines() if line.startswith("gate ")]
    assert any(
        "cfn-lint" in g and "-a cfn_lint_serverless.rules" in g and "template.yaml" in g for g in gates
    )
    (install,) = [line for line in MAKEFILE.splitlines() if "$(LINT_VENV)/bin/pip install" in line]
    assert re.search(r"\bcfn-lint-serverless==\d+\.\d+\.\d+\b", install), install
    assert re.search(r"\bcfn-lint==\d+\.\d+\.\d+\b", install), install


def test_every_cfn_lint_skip_is_justified_beside_it():
    # A YAML comment is the only place for the reason (cfn-lint's ignore_checks is a list of
    # ids): each skipped id has a comment naming it just above, inside its ignore_checks.
    skipped = {
        logical_id: resource["Metadata"]["cfn-lint"]["config"]["ignore_checks"]
        for logical_id, resource in load_document()["Resources"].items()
        if "cfn-lint" in resource.get("Metadata", {})
    }
    assert skipped, "the serverless rules found nothing to justify?"
    for logical_id, checks in skipped.items():
        block = TEMPLATE_TEXT.split(f"\n  {logical_id}:\n", 1)[1].split("ignore_checks:", 1)[1]
        for check in checks:
            above = block.split(f"- {check}\n", 1)[0]
            reasons = [line for line in above.splitlines() if line.strip().startswith("#")]
            assert any(check in line for line in reasons), f"{logical_id}: why is {check} skipped?"
            assert sum(len(line) for line in reasons) > 80, f"{logical_id}: {check} needs a reason"


def test_every_checkov_skip_has_a_comment():
    for logical_id, resource in load_document()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(str(skip.get("comment", "")).split()) >= 5, f"{logical_id}: {skip['id']}"
