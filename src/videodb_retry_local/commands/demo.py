"""`make demo`: the whole retry pipeline, locally, on a scripted mix of downloads.

Starts the sandbox VideoDB API on 127.0.0.1, creates the SAM stack in moto (short waits as
template parameter overrides), sends six downloads in through the real entry points (the
EventBridge rule and the queue), runs the queue's event source until each download has
reached its end (at most --timeout seconds), prints what happened to each one and exits 0
only if every download ended as designed.

With ``--api-base URL --download-id ID ...`` and the key in ``VIDEODB_API_KEY`` it retries
those downloads through that API instead (AWS stays emulated; nothing is scripted).

With ``--serve [--port-aws 5000] [--port-api 8765] [--host auto] [--sam-env DIR]`` it keeps the
emulated stack up instead, behind a moto server and the sandbox on 127.0.0.1 (or the Docker
bridge, for `sam local invoke`), until SIGINT or SIGTERM, so the
``videodb-retry`` commands can be tried against it (see :mod:`videodb_retry_local.commands.serve`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from videodb_retry_local.load.demo_cases import CASES, Case, Ending, collect, send
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.moto_env import local_aws
from videodb_retry_local.stack.presets import REAL_API_PARAMETERS, SANDBOX_PARAMETERS, add_param_option
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.stack.template import TemplateError
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

MAX_SECONDS = 120
SANDBOX_KEY = "sk-demo-sandbox"
KEY_ENV = "VIDEODB_API_KEY"


def run(
    stack: EmulatedStack,
    sandbox: SandboxServer | None,
    cases: Sequence[Case],
    timeout: float,
    out: Callable[[str], None],
) -> tuple[dict[str, Ending], float]:
    """Send the cases in and run the event source until all are final or time is up."""
    consumer = QueueConsumer(stack)
    for case in cases:
        send(stack, case)
    how = {c.send for c in cases}
    out(f"sent {len(cases)} downloads in ({', '.join(sorted(how))}); running the queue's event source")
    started = time.monotonic()
    next_report = started + 5

    def all_final() -> bool:
        nonlocal next_report
        endings = collect(stack, consumer, sandbox, cases)
        done = sum(e.final for e in endings.values())
        if time.monotonic() >= next_report:
            next_report += 5
            out(
                f"  {time.monotonic() - started:5.1f} s: {done}/{len(cases)} ended, "
                f"{stack.running_executions()} workflow(s) running"
            )
        return done == len(cases)

    consumer.run(until=all_final, timeout=timeout)
    return collect(stack, consumer, sandbox, cases), time.monotonic() - started


def table(rows: list[list[str]], headers: list[str], widest: int = 52) -> str:
    """A plain-text table; cells longer than ``widest`` are cut with an ellipsis."""
    cells = [[c if len(c) <= widest else c[: widest - 1] + "…" for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(
    cases: Sequence[Case], endings: dict[str, Ending], attempts: int, scripted: bool
) -> tuple[str, bool]:
    """The per-download table and totals; True when every case ended as designed."""
    rows, good = [], 0
    for case in cases:
        ending = endings[case.download_id]
        ok = case.check(ending, attempts) if scripted else ending.final
        good += ok
        polls = sum(e["detail"].get("polls", 0) for e in ending.outcomes)
        rows.append(
            [
                case.download_id if case.body is None else repr(case.body),
                case.scenario,
                case.expected,
                ending.outcome(),
                str(len(ending.outcomes)) if ending.outcomes else "-",
                str(polls) if ending.outcomes else "-",
                ending.where(),
                ending.reason(),
                "yes" if ok else "NO",
            ]
        )
    headers = [
        "download",
        "scenario",
        "expected",
        "outcome",
        "attempts",
        "polls",
        "ended in",
        "reason",
        "as designed",
    ]
    text = table(rows, headers)
    events = sum(len(e.outcomes) for e in endings.values())
    letters = sum(e.dead_letter is not None for e in endings.values())
    totals = f"\n\n{good}/{len(cases)} downloads ended as designed; {events} outcome events"
    totals += f", {letters} dead letters"
    if scripted:  # the sandbox counts the API calls; a real API is not asked
        totals += f", {sum(e.retry_calls for e in endings.values())} retry calls to the API"
    totals += "."
    return text + totals, good == len(cases)


def quiet_logs(verbose: bool) -> None:
    """Keep the demo's output readable: function JSON logs and metrics only with --verbose."""
    if verbose:
        return
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # no EMF lines on stdout
    warnings.filterwarnings("ignore")
    for name in ("moto", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # moto's Step Functions logs every Fail state at ERROR; here a Fail is a designed ending.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m videodb_retry_local.commands.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--api-base", help=f"a real VideoDB API origin (the key comes from ${KEY_ENV})")
    parser.add_argument(
        "--download-id", action="append", default=[], help="with --api-base: a download to retry"
    )
    add_param_option(parser)
    parser.add_argument("--timeout", type=float, default=MAX_SECONDS, help=f"seconds, at most {MAX_SECONDS}")
    parser.add_argument("--verbose", action="store_true", help="show the functions' logs and metrics")
    serve = parser.add_argument_group("serve mode (keep the stack up for the videodb-retry commands)")
    serve.add_argument(
        "--serve",
        action="store_true",
        help="run a moto server and the sandbox on 127.0.0.1 until Ctrl-C or SIGTERM",
    )
    serve.add_argument(
        "--port-aws", type=_port, metavar="PORT", help="moto server port (default 5000; 0: any free port)"
    )
    serve.add_argument(
        "--port-api", type=_port, metavar="PORT", help="sandbox API port (default 8765; 0: any free port)"
    )
    serve.add_argument(
        "--max-seconds", type=float, metavar="N", help="stop by itself after N seconds (default: never)"
    )
    serve.add_argument(
        "--host",
        metavar="ADDRESS",
        help="listen on ADDRESS instead of 127.0.0.1; 'auto': the Docker bridge gateway, where "
        "sam local invoke's containers reach it (never 0.0.0.0)",
    )
    serve.add_argument(
        "--sam-env",
        type=Path,
        metavar="DIR",
        help="write env.json (for sam local invoke --env-vars), aws.env and poll-running.json into DIR",
    )
    args = parser.parse_args(argv)
    if args.serve:
        if args.api_base or args.download_id:
            parser.error("--serve runs against the sandbox; --api-base/--download-id are for a single run")
        if args.max_seconds is not None and args.max_seconds <= 0:
            parser.error("--max-seconds must be positive")
        return args
    for option in ("port_aws", "port_api", "max_seconds", "host", "sam_env"):
        if getattr(args, option) is not None:
            parser.error(f"--{option.replace('_', '-')} needs --serve")
    if not 0 < args.timeout <= MAX_SECONDS:
        parser.error(f"--timeout must be between 0 and {MAX_SECONDS}")
    if args.download_id and not args.api_base:
        parser.error("--download-id needs --api-base (the sandbox run uses its own mix)")
    if args.api_base and not args.download_id:
        parser.error("--api-base needs at least one --download-id")
    return args


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo (or serve mode); the demo's exit status says whether every download ended
    as designed."""
    args = parse_args(argv)
    quiet_logs(args.verbose)
    overrides = dict(args.param)
    if args.serve:
        # Imported only for --serve: it loads the moto server (werkzeug, flask), which a plain
        # demo run does not need.
        from videodb_retry_local.commands import serve

        return serve.serve(
            overrides,
            port_aws=serve.DEFAULT_PORT_AWS if args.port_aws is None else args.port_aws,
            port_api=serve.DEFAULT_PORT_API if args.port_api is None else args.port_api,
            max_seconds=args.max_seconds,
            host=serve.HOST if args.host is None else args.host,
            sam_env=args.sam_env,
        )
    log_level = {"LogLevel": "INFO" if args.verbose else "ERROR"}
    if args.api_base:
        key = os.environ.get(KEY_ENV, "").strip()
        if not key:
            print(
                f"refusing to run: set {KEY_ENV} to the VideoDB API key (it is never printed)",
                file=sys.stderr,
            )
            return 2
        parameters = {**REAL_API_PARAMETERS, **log_level, **overrides, "VideoDBApiBaseUrl": args.api_base}
        cases = [
            Case(d, "real download", "a final outcome", "queue", None, lambda e, _: e.final)
            for d in args.download_id
        ]
        return _run_pipeline(key, parameters, None, cases, args.timeout, scripted=False)
    with SandboxServer(api_key=SANDBOX_KEY, host="127.0.0.1") as sandbox:
        for case in CASES:
            if case.script is not None:
                sandbox.script(case.download_id, **case.script)
        parameters = {**SANDBOX_PARAMETERS, **log_level, **overrides, "VideoDBApiBaseUrl": sandbox.base_url}
        print(f"sandbox VideoDB API on {sandbox.base_url}")
        return _run_pipeline(SANDBOX_KEY, parameters, sandbox, CASES, args.timeout, scripted=True)


def _run_pipeline(
    key: str,
    parameters: dict[str, str],
    sandbox: SandboxServer | None,
    cases: Sequence[Case],
    timeout: float,
    scripted: bool,
) -> int:
    try:
        with local_aws(), EmulatedStack(key, parameters) as stack:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(parameters.items()) if k != "VideoDBApiBaseUrl")
            print(f"emulated stack created from template.yaml ({shown})", flush=True)
            endings, seconds = run(stack, sandbox, cases, timeout, lambda line: print(line, flush=True))
            text, ok = report(cases, endings, int(stack.template.parameters["MaxRetryAttempts"]), scripted)
    except TemplateError as exc:
        print(f"cannot build the stack: {exc}", file=sys.stderr)
        return 2
    print()
    print(text)
    print(f"finished in {seconds:.1f} s: {'every download ended as designed' if ok else 'SOME DID NOT'}.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
