"""Local run of videodb-retry: the sandbox VideoDB API and AWS emulated by moto.

``videodb_sandbox/`` stands in for VideoDB; ``stack/`` is the emulated stack (with ``stack/iam/``,
IAM by execution); ``load/`` holds the load runs; ``commands/`` what ``make`` and the CLI start.
Each folder imports only those after it in that order (import-linter, pyproject.toml)."""
