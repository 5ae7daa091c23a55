"""``videodb-retry local ...``: hands its arguments to the local pipeline demo unchanged.

The demo (videodb_retry_local.commands.demo) needs moto and the sandbox, which an operator working on
a deployed stack need not install; so it is imported only when this command runs.
"""

from __future__ import annotations

import importlib

from videodb_retry_cli.cli_errors import CliError

DEMO_MODULE = "videodb_retry_local.commands.demo"


def run(argv: list[str]) -> int:
    """Run ``videodb_retry_local.commands.demo.main(argv)`` and return its exit code."""
    try:
        demo = importlib.import_module(DEMO_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in (DEMO_MODULE, "videodb_retry_local"):
            raise CliError(f"the local demo ({DEMO_MODULE}) is not installed in this environment") from None
        raise CliError(
            f"the local demo needs {exc.name}: install the extra with pip install -e '.[local]'"
        ) from None
    result = demo.main(argv)
    return result if isinstance(result, int) else 0
