"""Local run of videodb-retry: the sandbox VideoDB API and AWS emulated by moto."""
