"""Shared code of videodb-retry: the VideoDB client, message parsing, status mapping,
backoff and settings. Packaged as a Lambda layer and used by every function."""

__version__ = "0.1.0"
