"""Doing each step of an attempt once, however often its message is delivered.

One attempt of one download has two steps with effects outside this function: *issue* (the
``POST /download/{id}`` call) and *settle* (starting the workflow, announcing an outcome or
dead-lettering a permanent error). Each runs under Powertools Idempotency, keyed on the
download id, retry sequence and attempt number (``RetryRequest.ledger_key``) — not the SQS
message id, because the same attempt can arrive in different messages (a redelivery after a
partial failure, a re-queue sent twice).

- a step that completed before is not run again: its saved result is replayed;
- a step that raised is forgotten, so the next delivery runs it again (nothing lost);
- a step running right now in another invocation raises :class:`StepInProgress`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from videodb_retry.adapters.aws_clients import client
from videodb_retry.errors import StepInProgress
from videodb_retry.rules.messages import RetryRequest

REPLAYED = "_replayed"


def _mark_replayed(response: Any, idempotent_data: Any) -> Any:
    # Called by Powertools only when the result comes from the store, i.e. a duplicate.
    return {**response, REPLAYED: True} if isinstance(response, dict) else response


class DynamoDBLedger:
    """The :class:`~videodb_retry.ports.Ledger` kept in the template's idempotency table
    (DynamoDB, TTL on ``expiration``)."""

    def __init__(self, table_name: str, expires_after_seconds: int) -> None:
        self._table_name = table_name
        self._config = IdempotencyConfig(
            # The key is hashed as the list it names: (id, attempt) hashes as the
            # "[download_id, attempt]" of earlier releases did, so entries stored before
            # sequences were numbered still match their attempts.
            event_key_jmespath="key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
            response_hook=_mark_replayed,
        )
        self._steps: dict[str, Callable[..., dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _step(self, step: str) -> Callable[..., dict[str, Any]]:
        # Built on first use, not at import: the DynamoDB client is not part of the cold start.
        with self._lock:
            if step not in self._steps:
                # One store per step: Powertools keeps the key prefix on the store itself.
                store = DynamoDBPersistenceLayer(table_name=self._table_name, boto3_client=client("dynamodb"))
                self._steps[step] = idempotent_function(
                    _run,
                    data_keyword_argument="attempt",
                    persistence_store=store,
                    config=self._config,
                    key_prefix=step,
                )
            return self._steps[step]

    def once(
        self, step: str, request: RetryRequest, work: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``work`` for this step of this attempt unless it already ran."""
        attempt = {"key": list(request.ledger_key)}
        try:
            result = self._step(step)(attempt=attempt, work=work)
        except IdempotencyAlreadyInProgressError:
            raise StepInProgress(f"{step} of attempt {request.attempt} is in progress elsewhere") from None
        replayed = bool(result.pop(REPLAYED, False))
        return result, replayed

    def register_lambda_context(self, context: Any) -> None:
        """Lets an in-progress record expire with the invocation that wrote it."""
        self._config.register_lambda_context(context)


def _run(attempt: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return work()
