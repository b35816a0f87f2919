"""A bounded queue between a Broker's HTTP ingress and its dispatchers (the in-memory class).

The ingress answers 202 once an event is in this queue; the queue then hands events to the
Broker's EventSink in batches and redelivers the ones whose outcome is not finished, with
backoff, as a source does. When the queue holds ``capacity_events`` (queued plus in delivery)
it refuses new events: the ingress answers 503 and the sender retries (backpressure).

The queue lives in memory: accepted events are lost if its process dies before they are
delivered. A Kafka-class Broker writes accepted events to a topic instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from knray.broker.outcome import EventSink, Outcome
from knray.events import CloudEvent

__all__ = ["DEFAULT_QUEUE_CAPACITY", "IngressQueue"]

_log = logging.getLogger(__name__)

DEFAULT_QUEUE_CAPACITY: Final = 10_000


class IngressQueue:
    """Accepts events up to ``capacity_events`` and delivers them to ``sink``.

    ``batch_size`` caps events per ``sink.deliver()`` call; ``max_batches_in_flight`` caps
    concurrent calls. Unfinished outcomes (and a raising sink) are retried after
    ``retry_backoff_s`` doubling up to ``max_retry_backoff_s``, never dropped.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        capacity_events: int = DEFAULT_QUEUE_CAPACITY,
        batch_size: int = 500,
        max_batches_in_flight: int = 8,
        retry_backoff_s: float = 0.1,
        max_retry_backoff_s: float = 5.0,
    ) -> None:
        if capacity_events < 1 or batch_size < 1 or max_batches_in_flight < 1:
            raise ValueError("capacity_events, batch_size and max_batches_in_flight must be >= 1")
        self.sink = sink
        self.capacity_events = capacity_events
        self.batch_size = batch_size
        self.max_batches_in_flight = max_batches_in_flight
        self.retry_backoff_s = retry_backoff_s
        self.max_retry_backoff_s = max_retry_backoff_s
        self._queue: deque[CloudEvent] = deque()
        self._held = 0  # queued plus being delivered
        self._batches = 0
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._counts = {"accepted": 0, "refused": 0, "finished": 0, "retries": 0}

    def offer(self, events: Sequence[CloudEvent]) -> bool:
        """Queue all of ``events`` and return True, or none of them and return False (full)."""
        if self._closed or self._held + len(events) > self.capacity_events:
            self._counts["refused"] += len(events)
            return False
        self._queue.extend(events)
        self._held += len(events)
        self._counts["accepted"] += len(events)
        if self._pump is None:
            self._pump = asyncio.create_task(self._run())
        self._wake.set()
        return True

    async def accept(self, events: Sequence[CloudEvent]) -> str | None:
        """The ``Inlet`` of an HTTP ingress: None when queued, else why not."""
        if self.offer(events):
            return None
        if self._closed:
            return "the broker is shutting down"
        return f"the broker's ingress queue is full ({self.capacity_events} events)"

    @property
    def held(self) -> int:
        """Events accepted and not finished yet."""
        return self._held

    def stats(self) -> dict[str, Any]:
        """Counters: accepted, refused (503), finished, retries, queued, in_flight."""
        return {
            **self._counts,
            "queued": len(self._queue),
            "in_flight": self._held - len(self._queue),
        }

    async def drain(self, timeout_s: float) -> int:
        """Refuse new events and wait for the held ones to finish; returns those left."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while self._held > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self._held

    async def close(self) -> None:
        """Stop delivering (events still held are abandoned)."""
        self._closed = True
        tasks = [*self._tasks, *([self._pump] if self._pump is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            while not self._queue or self._batches >= self.max_batches_in_flight:
                self._wake.clear()
                await self._wake.wait()
            count = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._batches += 1
            task = asyncio.create_task(self._deliver(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: list[CloudEvent]) -> None:
        pending = batch
        attempt = 0
        try:
            while pending:
                outcomes = await self._send(pending)
                retry = [
                    event
                    for event, outcome in zip(pending, outcomes, strict=True)
                    if outcome is None or not outcome.finished
                ]
                done = len(pending) - len(retry)
                self._held -= done
                self._counts["finished"] += done
                pending = retry
                if pending:
                    self._counts["retries"] += len(pending)
                    await asyncio.sleep(
                        min(self.retry_backoff_s * 2**attempt, self.max_retry_backoff_s)
                    )
                    attempt += 1
        finally:
            self._batches -= 1
            self._wake.set()

    async def _send(self, events: list[CloudEvent]) -> list[Outcome | None]:
        try:
            outcomes = await self.sink.deliver(events)
        except Exception as error:
            _log.warning("broker sink failed for %d events (will retry): %r", len(events), error)
            return [None] * len(events)
        if len(outcomes) != len(events):
            _log.error("broker sink returned %d outcomes for %d events", len(outcomes), len(events))
            return [None] * len(events)
        return list(outcomes)
