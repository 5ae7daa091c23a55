"""`sam package`, as `make package` runs it after `sam build`, against S3 emulated by a moto
server on loopback: the code, LICENSE and the SAR README land in the bucket, and the packaged
template's SAR metadata points at them, which `sam publish` requires."""

from __future__ import annotations

import os
import subprocess

import boto3
import pytest
import yaml

from videodb_retry_local.stack.template import PROJECT_ROOT, load_document

SAM = PROJECT_ROOT / ".venv-sam" / "bin" / "sam"
BUCKET = "videodb-retry-artifacts"


def _env(endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAM_CLI_TELEMETRY": "0",
    }


@pytest.fixture(scope="module")
def packaged(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object]:
    if not SAM.exists():
        pytest.fail("the SAM CLI is missing: run `make .venv-sam/bin/sam` (make test does)", pytrace=False)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=BUCKET)
    out = tmp_path_factory.mktemp("package") / "packaged.yaml"
    done = subprocess.run(
        [
            str(SAM),
            "package",
            "--template-file",
            str(PROJECT_ROOT / "template.yaml"),
            "--s3-bucket",
            BUCKET,
            "--region",
            "us-east-1",
            "--output-template-file",
            str(out),
        ],
        cwd=PROJECT_ROOT,
        env=_env(moto_server),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return yaml.load(out.read_text(encoding="utf-8"), Loader=_Loader), s3


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags as plain values (only the metadata matters here)."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_sar_readme_and_licence_are_uploaded_and_referenced(packaged):
    document, s3 = packaged
    metadata = document["Metadata"]["AWS::ServerlessRepo::Application"]
    for key, source in (("LicenseUrl", "LICENSE"), ("ReadmeUrl", "docs/sar/README.md")):
        url = metadata[key]
        assert url.startswith(f"s3://{BUCKET}/"), f"{key} not uploaded: {url}"
        body = s3.get_object(Bucket=BUCKET, Key=url.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
        assert body == (PROJECT_ROOT / source).read_bytes()
    original = load_document()["Metadata"]["AWS::ServerlessRepo::Application"]
    unchanged = {k: v for k, v in original.items() if k not in ("LicenseUrl", "ReadmeUrl")}
    assert {k: metadata[k] for k in unchanged} == unchanged


def test_code_and_definition_point_at_the_bucket(packaged):
    document, _ = packaged
    for logical_id, resource in document["Resources"].items():
        properties = resource.get("Properties") or {}
        for name in ("CodeUri", "ContentUri", "DefinitionUri"):
            if name in properties:
                where = properties[name]  # an s3:// URI, or {Bucket, Key} for a definition
                uploaded = (
                    where.get("Bucket") == BUCKET
                    if isinstance(where, dict)
                    else where.startswith(f"s3://{BUCKET}/")
                )
                assert uploaded, f"{logical_id}.{name}: {where}"


def test_make_package_asks_for_the_bucket():
    done = subprocess.run(
        ["make", "--no-print-directory", "package", "S3_BUCKET="],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    assert done.returncode != 0 and "S3_BUCKET=<your artifact bucket>" in done.stderr
    assert "sam build" not in done.stdout  # refused before building anything
