"""Processing a batch's records concurrently, with Powertools' partial batch responses.

Each record still goes through the same record handler, success and failure bookkeeping and
``batchItemFailures`` report; only the loop runs on a bounded pool of threads, so a batch of
slow API calls takes about as long as one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType


class ConcurrentBatchProcessor(BatchProcessor):
    """A :class:`BatchProcessor` that runs up to ``max_workers`` records at once."""

    def __init__(self, max_workers: int, **kwargs: Any) -> None:
        super().__init__(event_type=EventType.SQS, **kwargs)
        self.max_workers = max(1, max_workers)
        self._pool: ThreadPoolExecutor | None = None

    def process(self) -> list[tuple]:
        """Handle every record; results keep the records' order."""
        if self.max_workers == 1 or len(self.records) <= 1:
            return super().process()
        if self._pool is None:
            # Created on first use and kept: warm invocations reuse the threads.
            self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="record")
        return list(self._pool.map(self._process_record, self.records))
