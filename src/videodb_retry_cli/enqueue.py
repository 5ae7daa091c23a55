"""``videodb-retry enqueue``: put download ids on the retry queue, ten per SendMessageBatch.

Every id is checked locally with the retry function's own rules first, so an id that would
only end up in the dead-letter queue as poison is reported here and never sent.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

from botocore.exceptions import ClientError
from videodb_retry.rules.messages import MAX_REASON_LENGTH, PoisonMessage, RetryRequest, validate_download_id

from videodb_retry_cli import PROG
from videodb_retry_cli.aws import Aws, describe_error, one_line
from videodb_retry_cli.cli_errors import CliError, UsageError
from videodb_retry_cli.output import Progress
from videodb_retry_cli.stack_lookup import Targets

BATCH_SIZE = 10  # the most entries SendMessageBatch takes
STDIN = "-"
# A failed entry that is SQS's fault (SenderFault false) is sent again this many times.
SERVER_FAULT_RETRIES = 2


@dataclass(frozen=True)
class Candidate:
    """One id as read, with where it came from (for error messages)."""

    text: str
    origin: str


def read_candidates(ids: list[str], files: list[str], stdin: TextIO) -> list[Candidate]:
    """Ids from the arguments, stdin (``-``) and ``--file`` files, in that order.

    Files and stdin hold one id a line; blank lines and lines starting with ``#`` are skipped.
    """
    sources = [name for name in ids if name == STDIN] + [name for name in files if name == STDIN]
    if len(sources) > 1:
        raise UsageError("stdin ('-') can be read only once")
    candidates = [Candidate(text, f"argument {n}") for n, text in enumerate(ids, 1) if text != STDIN]
    if STDIN in ids or STDIN in files:
        candidates += _lines(stdin, "stdin")
    for name in files:
        if name == STDIN:
            continue
        try:
            with open(name, encoding="utf-8") as handle:
                candidates += _lines(handle, name)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(f"cannot read {name}: {one_line(reason)}") from None
    return candidates


def _lines(handle: TextIO, label: str) -> list[Candidate]:
    found = []
    for number, line in enumerate(handle, 1):
        text = line.strip()
        if text and not text.startswith("#"):
            found.append(Candidate(text, f"{label}:{number}"))
    return found


def message_body(download_id: str, reason: str | None) -> str:
    """The queue body: the bare id, or the contract's JSON shape when there is a reason."""
    if reason:
        return RetryRequest(download_id=download_id, reason=reason).to_body()
    return download_id


def run(args: Any, aws: Aws, targets: Targets) -> int:
    """Validate, de-duplicate and send the ids; 1 when any id failed, else 0."""
    if not args.ids and not args.file:
        raise UsageError("give download ids, --file FILE, or '-' to read stdin")
    reason = args.reason
    if reason is not None and not (0 < len(reason) <= MAX_REASON_LENGTH):
        raise UsageError(f"--reason must be 1 to {MAX_REASON_LENGTH} characters")
    candidates = read_candidates(args.ids, args.file or [], sys.stdin)
    if not candidates:
        print(f"{PROG}: no download ids in the input; nothing sent", file=sys.stderr)
        return 0

    valid: list[Candidate] = []
    invalid: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    for candidate in candidates:
        try:
            download_id = validate_download_id(candidate.text)
        except PoisonMessage as exc:
            invalid.append(f"{candidate.origin}: {exc}")
            continue
        if download_id in seen:
            duplicates += 1  # the same download retried twice at once helps nobody
            continue
        seen.add(download_id)
        valid.append(candidate)

    # Find the queue before reporting anything: a wrong stack is the one error worth reading.
    queue_url = targets.retry_queue_url() if valid else ""
    for text in invalid:
        _report(text)
    sent, refused = _send(aws, queue_url, valid, reason, args.progress)
    failed = len(invalid) + refused
    if duplicates:
        print(f"{PROG}: {duplicates} repeated id(s) sent once only", file=sys.stderr)
    if valid:
        print(f"sent {sent} download id(s) to {queue_url}")
    if failed:
        print(f"{PROG}: {failed} of {len(candidates)} id(s) failed", file=sys.stderr)
        return 1
    return 0


def _send(
    aws: Aws, queue_url: str, items: list[Candidate], reason: str | None, force: bool
) -> tuple[int, int]:
    if not items:
        return 0, 0
    sqs = aws.client("sqs")
    auto = sys.stderr.isatty() and len(items) > BATCH_SIZE
    progress = Progress(len(items), "sent", enabled=force or auto)
    sent = refused = 0
    for start in range(0, len(items), BATCH_SIZE):
        batch = items[start : start + BATCH_SIZE]
        try:
            ok, errors = _send_batch(sqs, queue_url, batch, reason)
        except ClientError as exc:
            progress.finish()
            raise CliError(f"{describe_error(exc)} ({sent} of {len(items)} id(s) sent before this)") from None
        sent += ok
        if errors:
            progress.finish()
        for candidate, text in errors:
            refused += 1
            _report(f"{candidate.origin}: {candidate.text}: refused by SQS: {text}")
        progress.update(start + len(batch))
    progress.finish()
    return sent, refused


def _send_batch(
    sqs: Any, queue_url: str, batch: list[Candidate], reason: str | None
) -> tuple[int, list[tuple[Candidate, str]]]:
    """One batch; entries SQS failed on its own side are retried, the sender's faults are not."""
    pending = {f"m{i}": c for i, c in enumerate(batch)}
    ok = 0
    errors: list[tuple[Candidate, str]] = []
    for round_ in range(SERVER_FAULT_RETRIES + 1):
        answer = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": key, "MessageBody": message_body(c.text, reason)} for key, c in pending.items()],
        )
        for entry in answer.get("Successful", []):
            if pending.pop(entry.get("Id"), None) is not None:
                ok += 1
        retry: dict[str, Candidate] = {}
        for entry in answer.get("Failed", []):
            candidate = pending.pop(entry.get("Id"), None)
            if candidate is None:
                continue
            if entry.get("SenderFault") or round_ == SERVER_FAULT_RETRIES:
                errors.append(
                    (candidate, f"{entry.get('Code', 'error')}: {entry.get('Message', '')}".rstrip(": "))
                )
            else:
                retry[entry["Id"]] = candidate
        errors += [(c, "SQS did not answer for this entry") for c in pending.values()]
        pending = retry
        if not pending:
            break
    return ok, errors


def _report(text: str) -> None:
    print(f"{PROG}: {one_line(text)}", file=sys.stderr)
