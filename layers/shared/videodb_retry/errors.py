"""How a failed call is classified: the class decides where the message goes.

- :class:`PermanentError`: retrying cannot help (bad id, unknown download, forbidden) -> DLQ now.
- :class:`TransientError`: may work later (timeouts, 429, 5xx) -> fail the record; SQS redelivers.
- :class:`AuthError`: 401; the key may have been rotated -> re-read the secret once, then transient.
"""

from __future__ import annotations


class RetryPipelineError(Exception):
    """Base of every error the pipeline classifies."""

    code = "error"


class PermanentError(RetryPipelineError):
    """An error that no retry can fix; the message goes to the dead-letter queue."""

    code = "permanent"

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TransientError(RetryPipelineError):
    """An error that may pass; the record fails and SQS delivers it again later."""

    code = "transient"

    def __init__(self, message: str, status_code: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class AuthError(TransientError):
    """401 from VideoDB: the key is wrong or was rotated."""

    code = "unauthorized"


class ConfigurationError(TransientError):
    """The deployment is not ready (e.g. the secret holds no key yet); transient by design so
    that messages wait in the queue until an operator fixes it."""

    code = "configuration"


class ForeignOriginError(PermanentError):
    """A URL to follow is not on the configured API origin; the key is not sent there."""


class StepInProgress(Exception):
    """The same step of the same attempt is running in another invocation (see ledger.py)."""


class RequestDeferred(TransientError):
    """Our own request budget (``budgets.py``) refused a VideoDB request: nothing was sent.

    Not VideoDB's failure: the retry function re-queues the record without spending a receive,
    the poll function answers "deferred" (the workflow waits, no Lambda held), the breaker's
    probe tries on its next tick. A :class:`TransientError` still, so a caller that knows
    nothing of budgets (the sweeper) treats it as "try later".
    """

    code = "deferred"

    def __init__(self, kind: str, retry_after: int = 1) -> None:
        super().__init__(f"the {kind} request budget is spent for now", retry_after=retry_after)
        self.kind = kind
        # The body the record is re-queued with when it is not the record's own: a failure
        # report already admitted as a retry sequence comes back as that sequence's attempt.
        self.requeue_body: str | None = None
