"""What ``make`` and the CLI start: the demo, serve mode, ``sam local`` and the IAM pass."""
