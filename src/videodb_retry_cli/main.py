"""Entry point of the ``videodb-retry`` command: argument parsing, dispatch, error handling.

Every failure an operator can cause or fix ends as ONE line on stderr, ``videodb-retry: ...``,
and a non-zero exit (2 for a wrong command line, 1 otherwise): never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from videodb_retry import __version__

from videodb_retry_cli import PROG, breaker_switch, check, enqueue, local, recent_retries, redrive
from videodb_retry_cli.aws import Aws, AwsOptions, describe_error, one_line
from videodb_retry_cli.cli_errors import CliError
from videodb_retry_cli.stack_lookup import DEFAULT_CONFIG_ENV, SamConfig, Targets

# Global options that take a value: needed to find where `local`'s own arguments begin.
_VALUE_OPTIONS = ("--region", "--profile", "--endpoint-url", "--stack-name", "--config-file", "--config-env")

Command = Callable[[Any, Aws, Targets], int]
Subcommands = argparse._SubParsersAction  # what add_subparsers() returns
COMMANDS: dict[str, Command] = {
    "enqueue": enqueue.run,
    "redrive": redrive.run,
    "status": recent_retries.run,
    "breaker": breaker_switch.run,
    "check": check.run,
}

DESCRIPTION = """\
Operate a deployed videodb-retry stack: queue download ids for a retry, move the dead-letter
queue back, and see how recent retries went.

The queues and the workflow are found from the stack's outputs. The stack is --stack-name or,
without it, stack_name in ./samconfig.toml (the file `sam deploy` writes).
"""

EPILOG = """\
examples:
  videodb-retry enqueue download-abc123 download-def456
  videodb-retry enqueue --file failed.txt --reason "ticket 42"
  videodb-retry redrive --dry-run
  videodb-retry status download-abc123
  videodb-retry --endpoint-url http://127.0.0.1:5000 --stack-name videodb-retry status --json
"""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``videodb-retry: ...``) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        """Print the error on one line and exit 2."""
        print(f"{PROG}: {one_line(message)} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def _positive(limit: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"{value} is not between 1 and {limit}")
        return value

    return parse


def _add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # On the subcommands the defaults are suppressed, so `--region x status` and
    # `status --region x` both work and neither position overwrites the other with None.
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    group = parser.add_argument_group("AWS and stack options (also accepted before the command)")
    group.add_argument(
        "--region", metavar="REGION", help="AWS region (default: AWS config, then samconfig.toml)", **default
    )
    group.add_argument("--profile", metavar="NAME", help="AWS profile from ~/.aws/config", **default)
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="send every AWS call to this endpoint (an emulator such as moto or LocalStack)",
        **default,
    )
    group.add_argument(
        "--stack-name",
        metavar="NAME",
        help="the deployed stack (default: samconfig.toml's stack_name)",
        **default,
    )
    group.add_argument(
        "--config-file",
        metavar="PATH",
        help="samconfig file to read the stack name from (default: ./samconfig.toml)",
        **default,
    )
    group.add_argument(
        "--config-env",
        metavar="ENV",
        help=f"samconfig environment, e.g. prod (default: {DEFAULT_CONFIG_ENV})",
        default=argparse.SUPPRESS if suppress else DEFAULT_CONFIG_ENV,
    )


def build_parser() -> Parser:
    """The whole command line: global options and the enqueue/redrive/status/breaker/check/local commands."""
    parser = Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_enqueue(commands)
    _add_redrive(commands)
    _add_status(commands)
    _add_breaker(commands)
    _add_check(commands)
    _add_local(commands)
    return parser


def _command(commands: Subcommands, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """One subcommand that also accepts the global options after its name."""
    sub = commands.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_global_options(sub, suppress=True)
    return sub


def _add_enqueue(commands: Subcommands) -> None:
    """`enqueue`: ids from the command line, files or stdin."""
    p = _command(
        commands,
        "enqueue",
        "queue download ids for a retry",
        "Queue download ids on the retry queue (SendMessageBatch, 10 at a time).\n\n"
        "Every id is checked first with the retry function's rules (1-128 letters, digits, '-'\n"
        "or '_'); a bad id is reported and not sent. Files and stdin hold one id a line; blank\n"
        "lines and lines starting with '#' are skipped. Repeated ids are sent once.\n\n"
        "exit status: 0 all sent, 1 some id failed (each is named on stderr), 2 usage error",
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="download ids; '-' reads ids from stdin")
    p.add_argument(
        "--file", "-f", action="append", metavar="FILE", help="read ids from FILE (repeatable; '-' is stdin)"
    )
    p.add_argument(
        "--reason", metavar="TEXT", help="send JSON bodies with this reason (shows in logs and events)"
    )
    p.add_argument("--queue-url", metavar="URL", help="the retry queue (default: stack output RetryQueueUrl)")
    p.add_argument(
        "--progress", action="store_true", help="show progress on stderr even when it is not a terminal"
    )


def _add_redrive(commands: Subcommands) -> None:
    """`redrive`: the dead-letter queue's summary and the move back."""
    p = _command(
        commands,
        "redrive",
        "summarise the dead-letter queue and move it back to the retry queue",
        "Summarise the dead-letter queue by error_code and reason (messages are read, not\n"
        "consumed: hidden briefly, then made visible again), then start an SQS message move\n"
        "task (StartMessageMoveTask) from the dead-letter queue to the retry queue.\n\n"
        "Against an emulator given with --endpoint-url that has no StartMessageMoveTask (moto),\n"
        "the messages are moved with receive/send/delete instead, at most as many as the queue\n"
        "held when the command started. Without --endpoint-url that fallback is never used.",
    )
    p.add_argument("--dry-run", action="store_true", help="show the summary only; move nothing")
    p.add_argument(
        "--max-per-second", type=_positive(500), metavar="N", help="move at most N messages a second (1-500)"
    )
    p.add_argument(
        "--sample",
        type=_positive(10000),
        default=redrive.DEFAULT_SAMPLE,
        metavar="N",
        help=f"read at most N messages for the summary (default {redrive.DEFAULT_SAMPLE})",
    )
    p.add_argument("--json", action="store_true", help="print the summary and the result as JSON")
    p.add_argument("--queue-url", metavar="URL", help="the retry queue (default: stack output RetryQueueUrl)")
    p.add_argument(
        "--dlq-url",
        metavar="URL",
        help="the dead-letter queue (default: --queue-url's redrive target, "
        "else stack output DeadLetterQueueUrl)",
    )


def _add_status(commands: Subcommands) -> None:
    """`status`: recent retries of one download or of all."""
    p = _command(
        commands,
        "status",
        "show recent retries and how they went",
        "Recent retries from the retry workflow's executions, newest first: download id,\n"
        "attempt, status (running, done, failed, timed_out), polls, start, elapsed time and error.",
    )
    p.add_argument("download_id", nargs="?", metavar="ID", help="only this download's retries")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects (for scripts)")
    p.add_argument(
        "--limit",
        type=_positive(recent_retries.MAX_LIMIT),
        default=recent_retries.DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N retries (default {recent_retries.DEFAULT_LIMIT})",
    )
    p.add_argument(
        "--state-machine-arn", metavar="ARN", help="the workflow (default: stack output RetryWorkflowArn)"
    )


def _add_breaker(commands: Subcommands) -> None:
    """`breaker`: see, open or close the circuit breaker."""
    p = _command(
        commands,
        "breaker",
        "see the circuit breaker, or open / close it by hand",
        "The circuit breaker pauses the retry queue while VideoDB fails (docs/operating.md,\n"
        "Outage mode). 'status' shows it; 'open' pauses retries until 'close' (no probes meanwhile);\n"
        "'close' resumes them at once, ramping up. The breaker function does it\n"
        "(lambda:InvokeFunction).",
    )
    p.add_argument(
        "action", nargs="?", default="status", choices=breaker_switch.ACTIONS, help="default: status"
    )
    p.add_argument(
        "--reason", metavar="TEXT", help="why (required for open and close; recorded and announced)"
    )
    p.add_argument("--json", action="store_true", help="print the breaker's report as JSON")
    p.add_argument(
        "--function-name",
        metavar="NAME",
        help="the breaker function (default: stack output BreakerFunctionName)",
    )


def _add_check(commands: Subcommands) -> None:
    """`check`: after a deploy, does everything hold?"""
    p = _command(
        commands,
        "check",
        "check a deployed stack: key, mapping, breaker, alarm e-mail, DLQ, last sweep",
        "One line per check, 'ok' or 'FAIL' with what to do: the secret's key is accepted by\n"
        "VideoDB (one GET /download?count=1; the key is never printed), the retry queue's\n"
        "mapping is enabled, the breaker is closed, the alarm topic has a confirmed\n"
        "subscription, the dead-letter queue is empty, the sweeper (when on) has run.\n\n"
        "exit status: 0 every check holds, 1 one or more failed",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of {check, ok, detail}")


def _add_local(commands: Subcommands) -> None:
    """`local`: its arguments are cut off before parsing (see split_local) and go to the demo."""
    commands.add_parser(
        "local",
        help="run the whole pipeline on this machine (arguments go to videodb_retry_local.commands.demo)",
        description="Run the local demo: every argument after 'local' is passed to it unchanged, "
        "so 'videodb-retry local --help' shows the demo's own options.",
        add_help=False,
    )


def split_local(argv: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """``(global args + ['local'], the demo's args)`` when the command is ``local``, else None.

    argparse would read the demo's options (``--help``, ``--serve``) as its own, so they are
    cut off before parsing.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return None
        if arg in _VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return (list(argv[: i + 1]), list(argv[i + 1 :])) if arg == "local" else None
    return None


def _context(args: argparse.Namespace) -> tuple[Aws, Targets]:
    @functools.cache
    def config() -> SamConfig:
        return SamConfig.load(
            getattr(args, "config_file", None), getattr(args, "config_env", DEFAULT_CONFIG_ENV)
        )

    aws = Aws(
        AwsOptions(
            region=getattr(args, "region", None),
            profile=getattr(args, "profile", None),
            endpoint_url=getattr(args, "endpoint_url", None),
        ),
        fallback_region=lambda: config().region,
    )
    targets = Targets(
        aws,
        config,
        stack_name=getattr(args, "stack_name", None),
        queue_url=getattr(args, "queue_url", None),
        dlq_url=getattr(args, "dlq_url", None),
        state_machine_arn=getattr(args, "state_machine_arn", None),
    )
    return aws, targets


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run the command; returns the exit status (never raises for user errors)."""
    parser = build_parser()
    try:
        passthrough = split_local(argv)
        if passthrough is not None:
            parser.parse_args(passthrough[0])  # checks the global options
            return local.run(passthrough[1])
        args = parser.parse_args(list(argv))
        aws, targets = _context(args)
        return COMMANDS[args.command](args, aws, targets)
    except SystemExit as exc:  # --help, --version, usage errors (and the demo's own exits)
        return _exit_status(exc.code)
    except CliError as exc:
        _fail(str(exc))
        return exc.exit_code
    except (ClientError, BotoCoreError) as exc:
        _fail(describe_error(exc))
        return 1
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: ``videodb-retry ...``."""
    try:
        code = run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) went away; say nothing more, like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def _fail(text: str) -> None:
    print(f"{PROG}: {one_line(text)}", file=sys.stderr)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
