"""The rules: pure decisions (what a message means, how an answer maps, how long to wait).

No boto3, botocore, requests or Powertools, no clock and no environment: the import-linter
contracts in pyproject.toml hold this."""
