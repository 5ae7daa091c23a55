"""The release: one version everywhere, the MIT licence, the changelog, and the template's
Serverless Application Repository metadata as SAR reads it.

The metadata is parsed with the parser the SAM CLI itself uses for `sam publish`
(``samcli.vendor.serverlessrepo``, run in the SAM CLI's environment) and checked against the
constraints of SAR's CreateApplication API.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from typing import Any

import pytest
from videodb_retry import __version__

from tests.documentation import page
from videodb_retry_cli.main import build_parser
from videodb_retry_local.stack.template import PROJECT_ROOT, load_document

SAM_PYTHON = PROJECT_ROOT / ".venv-sam" / "bin" / "python"
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")

# The SAM CLI's own reading of the metadata, and the checks `sam publish` makes before calling
# SAR (create: author, description, name; new version: semantic_version).
READ_METADATA = """
import json, sys
from samcli.vendor.serverlessrepo.parser import get_app_metadata, parse_template
with open(sys.argv[1], encoding="utf-8") as handle:
    metadata = get_app_metadata(parse_template(handle.read()))
metadata.validate(["author", "description", "name"])
metadata.validate(["semantic_version"])
print(json.dumps(metadata.template_dict))
"""


@pytest.fixture(scope="module")
def sar_metadata() -> dict[str, Any]:
    if not SAM_PYTHON.exists():
        pytest.fail("the SAM CLI is missing: run `make .venv-sam/bin/sam` (make test does)", pytrace=False)
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", READ_METADATA, str(PROJECT_ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


# -- one version -------------------------------------------------------------------------------


def test_the_version_is_semantic():
    assert SEMVER.fullmatch(__version__), __version__


def test_pyproject_reads_the_version_from_the_package():
    assert "version" not in PYPROJECT["project"], "a second copy of the version"
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "videodb_retry.__version__"}


def test_the_installed_distribution_has_the_version():
    from importlib.metadata import version

    assert version("videodb-retry") == __version__


def test_sar_semantic_version_is_the_package_version(sar_metadata):
    assert sar_metadata["SemanticVersion"] == __version__


def test_cli_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"videodb-retry {__version__}"


def test_the_changelog_has_the_version_in_keep_a_changelog_form():
    text = (PROJECT_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "keepachangelog.com" in text and "## [Unreleased]" in text
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+[^\]]*)\] - (\d{4}-\d{2}-\d{2})$", text, re.MULTILINE)
    assert releases and releases[0][0] == __version__, "the newest release section is the version"
    for name, _ in releases:
        assert re.search(rf"^\[{re.escape(name)}\]: https://", text, re.MULTILINE), f"no link for {name}"


# -- licence -------------------------------------------------------------------------------------


def test_the_licence_is_mit_everywhere(sar_metadata):
    text = (PROJECT_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    assert PYPROJECT["project"]["license"] == "MIT" == sar_metadata["SpdxLicenseId"]
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert sar_metadata["LicenseUrl"] == "LICENSE"


# -- SAR metadata (CreateApplication constraints) ------------------------------------------------


def test_sar_metadata_has_no_intrinsic_functions():
    def walk(value: Any) -> None:
        if isinstance(value, dict):
            assert not any(k == "Ref" or k.startswith("Fn::") for k in value), value
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            assert isinstance(value, str) and "${" not in value, value

    walk(load_document()["Metadata"]["AWS::ServerlessRepo::Application"])


def test_sar_metadata_fits_the_create_application_constraints(sar_metadata):
    m = sar_metadata
    assert set(m) == {
        "Name",
        "Description",
        "Author",
        "SpdxLicenseId",
        "LicenseUrl",
        "ReadmeUrl",
        "Labels",
        "HomePageUrl",
        "SemanticVersion",
        "SourceCodeUrl",
    }
    assert re.fullmatch(r"[a-zA-Z0-9\-]{1,140}", m["Name"])
    assert re.fullmatch(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?", m["Author"]) and len(m["Author"]) <= 127
    assert 1 <= len(m["Description"]) <= 256
    assert 1 <= len(m["Labels"]) <= 10
    for label in m["Labels"]:
        assert re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label), label
    for url in (m["HomePageUrl"], m["SourceCodeUrl"]):
        assert url.startswith("https://")


def test_sar_urls_are_the_projects(sar_metadata):
    urls = PYPROJECT["project"]["urls"]
    assert sar_metadata["HomePageUrl"] == urls["Homepage"]
    assert sar_metadata["SourceCodeUrl"] == urls["Source"]


def test_sar_readme_and_licence_are_files_sam_package_can_upload(sar_metadata):
    for key in ("LicenseUrl", "ReadmeUrl"):
        path = PROJECT_ROOT / sar_metadata[key]
        assert path.is_file(), f"{key}: {path}"
        assert path.stat().st_size < 5 * 1024 * 1024  # SAR's limit on each


def test_sar_readme_says_what_a_deploy_needs():
    text = (PROJECT_ROOT / "docs" / "sar" / "README.md").read_text(encoding="utf-8")
    flat = " ".join(text.split())
    for needed in (
        "CAPABILITY_IAM",
        "CAPABILITY_RESOURCE_POLICY",
        "Show apps that create custom IAM roles or resource policies",
        "ApiKeySecretArn",
    ):
        assert needed in flat, needed
    # The README's deploy names the capability; publishing is operating.md's.
    assert "CAPABILITY_RESOURCE_POLICY" in " ".join(page("README").split())
    assert "make package S3_BUCKET=" in " ".join(page("operating").split())
