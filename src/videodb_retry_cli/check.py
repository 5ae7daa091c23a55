"""``videodb-retry check``: what a first deploy needs to know, one line each.

The secret holds a key VideoDB accepts (one ``GET /download?count=1``; the key is never
printed), the retry queue's mapping is enabled, the breaker is closed, the alarm topic has a
confirmed subscription, the dead-letter queue is empty, and the sweeper (when it is on) has
run. Each line starts ``ok`` or ``FAIL`` and a failing line says what to do. Exit 0 only when
every line is ``ok``; one check that cannot be made fails that line only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from videodb_retry.adapters.api_key import parse_secret_value
from videodb_retry.adapters.sweeper_aws import CURSOR_ID, cursor_from_item
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.errors import AuthError, RetryPipelineError
from videodb_retry.settings import Settings

from videodb_retry_cli import breaker_switch
from videodb_retry_cli.aws import Aws, describe_error, one_line
from videodb_retry_cli.cli_errors import CliError
from videodb_retry_cli.output import print_json
from videodb_retry_cli.stack_lookup import DEAD_LETTER_QUEUE_URL, RETRY_QUEUE_ARN, Targets

# The template's output keys (template.yaml, Outputs).
API_KEY_SECRET_ARN = "ApiKeySecretArn"  # noqa: S105 (an output name, not a secret)
API_BASE_URL = "VideoDBApiBaseUrl"
ALARM_TOPIC_ARN = "AlarmTopicArn"
SWEEPER_STATE_TABLE = "SweeperStateTableName"


# What one check says: whether it holds, and the detail (what to do when it does not).
Verdict = tuple[bool, str]


@dataclass(frozen=True)
class Finding:
    """One line of the check: what was checked, whether it holds, and what to do if not."""

    name: str
    ok: bool
    text: str

    @classmethod
    def of(cls, name: str, verdict: Verdict) -> Finding:
        """The finding of check ``name`` that gave ``verdict`` (whether it holds, and why)."""
        return cls(name, *verdict)

    def line(self) -> str:
        """``ok   name: text`` or ``FAIL name: text``."""
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.text}"


def run(args: Any, aws: Aws, targets: Targets) -> int:
    """Make every check, print a line for each; 0 when all hold, else 1."""
    targets.output(RETRY_QUEUE_ARN)  # no such stack: one error line, as every command
    checks: list[tuple[str, Callable[[Aws, Targets], Verdict]]] = [
        ("api key", api_key),
        ("retry queue mapping", mapping),
        ("breaker", breaker),
        ("alarm e-mail", alarm_subscription),
        ("dead-letter queue", dead_letters),
        ("sweeper", last_sweep),
    ]
    findings = [_guarded(name, check, aws, targets) for name, check in checks]
    if args.json:
        print_json([{"check": f.name, "ok": f.ok, "detail": f.text} for f in findings])
    else:
        for finding in findings:
            print(finding.line())
    return 0 if all(f.ok for f in findings) else 1


def _guarded(name: str, check: Callable[[Aws, Targets], Verdict], aws: Aws, targets: Targets) -> Finding:
    """One check; what stops it (AWS refused, no such output) fails its line only."""
    try:
        return Finding.of(name, check(aws, targets))
    except CliError as exc:
        return Finding(name, False, one_line(str(exc)))
    except (ClientError, BotoCoreError) as exc:
        return Finding(name, False, describe_error(exc))
    except ValueError as exc:  # an answer or stored item that does not read as expected
        return Finding(name, False, f"unreadable: {one_line(str(exc), 200)}")


class _FixedKey:
    """The key read from the secret, as the client's key source (no re-read on a 401)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self) -> str:
        return self._key

    def refresh(self) -> str:
        return self._key


def api_key(aws: Aws, targets: Targets) -> Verdict:
    """The secret's key against VideoDB: one ``GET /download?count=1``."""
    secret_arn = targets.output(API_KEY_SECRET_ARN)
    base_url = targets.output(API_BASE_URL)
    raw = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn).get("SecretString")
    put_it = "put the VideoDB key in the secret (README, 'Putting the API key in the secret')"
    try:
        key = parse_secret_value(raw)
    except RetryPipelineError as exc:  # names what is wrong, never the value
        return (False, f"{exc}; {put_it}")
    try:
        client = VideoDBClient(Settings(api_base_url=base_url), _FixedKey(key))
    except ValueError as exc:
        return (False, f"the stack's VideoDBApiBaseUrl is not usable: {one_line(str(exc), 200)}")
    try:
        client.list_downloads(page_index=0, count=1)
    except AuthError:
        return (False, f"VideoDB at {base_url} refused the secret's key (401); {put_it}")
    except RetryPipelineError as exc:
        # The client's errors carry the status and VideoDB's message, never the key.
        return (False, f"GET {base_url}/download failed: {one_line(str(exc), 200)}")
    return (True, f"VideoDB at {base_url} accepts the secret's key")


def mapping(aws: Aws, targets: Targets) -> Verdict:
    """The retry queue's event source mapping is enabled."""
    queue_arn = targets.output(RETRY_QUEUE_ARN)
    mappings = aws.client("lambda").list_event_source_mappings(EventSourceArn=queue_arn)[
        "EventSourceMappings"
    ]
    if not mappings:
        return (False, "no event source mapping reads the retry queue: redeploy the stack")
    states = {m["UUID"]: m.get("State", "") for m in mappings}
    off = {uuid: state for uuid, state in states.items() if state != "Enabled"}
    if off:
        uuid, state = next(iter(off.items()))
        return (
            False,
            f"mapping {uuid} is {state}: retries are not read; if the breaker is closed, "
            f"enable it (aws lambda update-event-source-mapping --uuid {uuid} --enabled)",
        )
    return (True, f"enabled ({', '.join(states)})")


def breaker(aws: Aws, targets: Targets) -> Verdict:
    """The circuit breaker is closed (or not deployed)."""
    try:
        function_name = targets.output(breaker_switch.BREAKER_FUNCTION_NAME)
    except CliError:
        return (True, "not deployed (BreakerEnabled=false)")
    report = breaker_switch.invoke(aws, function_name, {"action": "status"})
    if report.get("mode") == "open":
        return (
            False,
            f"open, retries paused ({one_line(str(report.get('reason') or '-'), 200)}); "
            "once VideoDB is well: videodb-retry breaker close --reason TEXT",
        )
    return (True, f"closed (concurrency up to {report.get('concurrency')})")


def alarm_subscription(aws: Aws, targets: Targets) -> Verdict:
    """The alarm topic has at least one confirmed subscription."""
    try:
        topic_arn = targets.output(ALARM_TOPIC_ARN)
    except CliError:
        return (False, "no alarm topic: alarms notify nobody; deploy with AlarmEmail=ADDRESS")
    sns = aws.client("sns")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
    # A subscription not yet confirmed has SubscriptionArn "PendingConfirmation".
    confirmed = [s for s in subscriptions if str(s.get("SubscriptionArn", "")).startswith("arn:")]
    if confirmed:
        return (True, f"{len(confirmed)} confirmed subscription(s)")
    pending = len(subscriptions)
    return (
        False,
        f"no confirmed subscription ({pending} pending): confirm the e-mail AWS sent to AlarmEmail, "
        "or redeploy with AlarmEmail set",
    )


def dead_letters(aws: Aws, targets: Targets) -> Verdict:
    """The dead-letter queue's depth (every message there needs a person)."""
    url = targets.output(DEAD_LETTER_QUEUE_URL)
    attributes = targets.queue_attributes(
        url, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"
    )
    depth = sum(int(attributes.get(key, 0)) for key in attributes)
    if depth:
        return (False, f"~{depth} message(s) waiting: see why with videodb-retry redrive --dry-run")
    return (True, "empty")


def last_sweep(aws: Aws, targets: Targets) -> Verdict:
    """The sweeper's last run, from its cursor (when the sweeper is on)."""
    try:
        table = targets.output(SWEEPER_STATE_TABLE)
    except CliError:
        return (True, "off (SweeperEnabled=false)")
    item = aws.client("dynamodb").get_item(TableName=table, Key={"id": {"S": CURSOR_ID}}).get("Item")
    cursor = cursor_from_item(item) if item else None
    if cursor is None or cursor.last_run_at is None:
        return (False, "no sweep yet: it runs every SweepRateMinutes; check again after the first run")
    run = cursor.last_run
    when = cursor.last_run_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if run.get("stopped") == "error":
        return (False, f"the last sweep ({when}) failed: see the sweeper function's log")
    return (
        True,
        f"last run {when}: {run.get('pages', 0)} page(s), {run.get('published', 0)} published, "
        f"stopped: {run.get('stopped', '-')}",
    )
