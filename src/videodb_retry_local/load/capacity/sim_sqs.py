"""The retry queue as SQS keeps it, and its event source mapping as Lambda runs it.

- A message has a receive count and a time it is visible from (``DelaySeconds`` on send, the
  visibility timeout on receive, ``ChangeMessageVisibility`` by the function). Receiving it
  adds one to its count; a message received more than ``maxReceiveCount`` times is moved to
  the DLQ by redrive instead (with no reason: ``error_code`` ``redrive``). Sources:
  ``aws_quotas`` (``redrive``, ``sqs_max_visibility``, ``sqs_inflight_standard``).
- The mapping runs at most ``MaximumConcurrency`` batches at once (0 while the breaker has
  disabled it); a batch is up to ``BatchSize`` visible messages. A batch the account throttles
  is not run: its messages stay in flight until their visibility timeout ends (``aws_quotas``
  ``esm_throttle_visibility``), having spent a receive each.

Messages are kept in a heap by the time they become visible; a message's ``receipt`` is the
receive count at which it was handed out, so a stale visibility change is ignored.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from videodb_retry_local.load.capacity import aws_quotas


@dataclass
class Message:
    """One message of the retry queue."""

    message_id: str
    body: str
    visible_at: float
    receive_count: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    sent_at: float = 0.0  # when it was sent (SQS's SentTimestamp)


@dataclass
class Received:
    """A message as the function gets it (the parts ``record_delivery.QueueRecord`` reads)."""

    message: Message
    receipt_handle: str

    @property
    def body(self) -> str:
        """The message body."""
        return self.message.body

    @property
    def message_id(self) -> str:
        """The message id."""
        return self.message.message_id

    @property
    def attributes(self) -> Any:
        """``approximate_receive_count`` and ``sent_timestamp`` (epoch milliseconds) as
        Powertools' SQSRecord exposes them."""
        return _Attributes(str(self.message.receive_count), str(int(self.message.sent_at * 1000)))

    @property
    def message_attributes(self) -> Any:
        """The message attributes (a redriven message carries the DLQ's)."""
        return self.message.attributes


@dataclass(frozen=True)
class _Attributes:
    approximate_receive_count: str
    sent_timestamp: str


class Queue:
    """A standard queue with its redrive policy (the DLQ is a list of reasons)."""

    def __init__(
        self,
        env: simpy.Environment,
        visibility_timeout: int,
        max_receive_count: int,
        on_send: Callable[[], None],
    ) -> None:
        self.env = env
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self._on_send = on_send
        self._heap: list[tuple[float, int, Message]] = []
        self._ids = itertools.count()
        self.messages: dict[str, Message] = {}
        self.requests = 0  # SQS API requests, for cost
        self.redriven: list[Message] = []
        self.peak_depth = 0
        self.receives = 0  # deliveries to the function (each spends one of a message's receives)
        self.most_receives = 0  # the most receives one message reached

    def send(self, body: str, at: float, delay: int = 0, attributes: dict[str, Any] | None = None) -> str:
        """SendMessage at ``at`` (the sender's clock), visible ``delay`` s later."""
        if not 0 <= delay <= aws_quotas.value("sqs_max_delay"):
            raise ValueError(f"DelaySeconds {delay} is outside 0..900")
        sent_at = max(at, self.env.now)
        message = Message(
            f"m{next(self._ids)}", body, sent_at + delay, attributes=attributes or {}, sent_at=sent_at
        )
        self.messages[message.message_id] = message
        heapq.heappush(self._heap, (message.visible_at, next(self._ids), message))
        self.requests += 1
        self.peak_depth = max(self.peak_depth, len(self.messages))
        self._on_send()
        return message.message_id

    def receive(self, limit: int, now: float) -> list[Received]:
        """Up to ``limit`` visible messages (redriving those past maxReceiveCount)."""
        batch: list[Received] = []
        self.requests += 1
        while self._heap and self._heap[0][0] <= now and len(batch) < limit:
            visible_at, _, message = heapq.heappop(self._heap)
            if message.deleted or visible_at != message.visible_at:
                continue  # deleted, or re-pushed with a later visibility
            if message.receive_count >= self.max_receive_count:
                self.delete(message)
                self.redriven.append(message)
                continue
            message.receive_count += 1
            self.receives += 1
            self.most_receives = max(self.most_receives, message.receive_count)
            self._set_visible(message, now + self.visibility_timeout)
            batch.append(Received(message, f"{message.message_id}#{message.receive_count}"))
        return batch

    def postpone(self, receipt_handle: str, seconds: int, at: float) -> None:
        """ChangeMessageVisibility: visible ``seconds`` after ``at`` (a stale receipt is ignored)."""
        message_id, _, count = receipt_handle.partition("#")
        message = self.messages.get(message_id)
        self.requests += 1
        if message is None or str(message.receive_count) != count:
            return
        if not 0 <= seconds <= aws_quotas.value("sqs_max_visibility"):
            raise ValueError(f"VisibilityTimeout {seconds} is outside 0..43200")
        self._set_visible(message, at + seconds)

    def delete(self, message: Message) -> None:
        """DeleteMessage."""
        if not message.deleted:
            message.deleted = True
            self.messages.pop(message.message_id, None)
            self.requests += 1

    def next_visible(self) -> float | None:
        """When the next message becomes visible (None: the queue is empty)."""
        while self._heap and (self._heap[0][2].deleted or self._heap[0][0] != self._heap[0][2].visible_at):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def depth(self) -> int:
        """Messages in the queue, visible or in flight or delayed."""
        return len(self.messages)

    def in_flight(self, now: float) -> int:
        """Messages received and not yet visible again (approximate, as SQS's own metric)."""
        return sum(1 for m in self.messages.values() if m.receive_count and m.visible_at > now)

    def _set_visible(self, message: Message, at: float) -> None:
        message.visible_at = at
        heapq.heappush(self._heap, (at, next(self._ids), message))
