"""Shared code of videodb-retry, packaged as a Lambda layer and used by every function.

``rules/`` decide (pure), ``adapters/`` reach AWS and VideoDB, ``steps/`` are what each function
runs, typed against ``ports``; ``settings``, ``errors`` and ``observability`` serve all three.
The import-linter contracts in pyproject.toml hold the layering."""

__version__ = "0.1.0"
