"""The two kinds of error a command ends with; main() turns them into one line and an exit code."""

from __future__ import annotations


class CliError(Exception):
    """Something the operator can fix (unknown stack, missing queue, AWS refused): exit 1."""

    exit_code = 1


class UsageError(CliError):
    """The command line itself is wrong (bad argument, unreadable input file): exit 2."""

    exit_code = 2
