"""AckingConsumer: the delivery loop of every source whose server acknowledges each message.

RabbitMQ, Redis Streams, NATS JetStream and RocketMQ differ in how messages are fetched and
acknowledged, not in what a source must guarantee: a message is acknowledged only after its
event's delivery Outcome is finished; an unfinished one is retried with backoff, never
skipped; a consumer that dies leaves its messages unacknowledged, and the server hands them
out again (RabbitMQ requeues on channel close, a Redis group keeps them pending, JetStream
and RocketMQ redeliver when the ack wait / invisible duration ends). So: at-least-once.
Each server's module supplies a :class:`MessageClient`; this module is plain asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from knray.broker.outcome import EventSink
from knray.events import CloudEvent
from knray.sources.background import BackgroundTasks
from knray.sources.source import send_to_sink

__all__ = ["AckingConsumer", "MessageClient"]

log = logging.getLogger(__name__)

M = TypeVar("M")


class MessageClient(Protocol[M]):
    """The boundary to one message server, as an AckingConsumer uses it.

    ``fetch`` waits up to ``timeout_s`` and returns at most ``max_messages`` (possibly none);
    ``to_event`` maps one message (raising for a message that can never become an event);
    ``ack`` acknowledges finished messages; ``keep`` extends the lease of messages still in
    flight (JetStream ack wait, RocketMQ invisible duration; nothing elsewhere).
    """

    async def connect(self) -> None: ...

    async def fetch(self, max_messages: int, timeout_s: float) -> Sequence[M]: ...

    def to_event(self, message: M) -> CloudEvent: ...

    async def ack(self, messages: Sequence[M]) -> None: ...

    async def keep(self, messages: Sequence[M]) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True, eq=False)
class _Item(Generic[M]):
    message: M
    event: CloudEvent


class AckingConsumer(Generic[M]):
    """Fetches messages through ``client``, delivers them in batches to ``sink`` and
    acknowledges each one once its outcome is finished.

    ``batch_size`` caps the events per ``sink.deliver()``; ``max_in_flight`` (default
    4 x ``batch_size``) the messages fetched and not yet acknowledged; ``keep_interval_s``
    how often in-flight messages get their lease extended (None: never).
    """

    def __init__(
        self,
        client: MessageClient[M],
        sink: EventSink,
        *,
        batch_size: int = 100,
        max_in_flight: int | None = None,
        poll_timeout_s: float = 0.5,
        retry_backoff_s: float = 0.1,
        max_retry_backoff_s: float = 5.0,
        drain_timeout_s: float = 30.0,
        keep_interval_s: float | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.client = client
        self.sink = sink
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight or 4 * batch_size
        self.poll_timeout_s = poll_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.max_retry_backoff_s = max_retry_backoff_s
        self.drain_timeout_s = drain_timeout_s
        self.keep_interval_s = keep_interval_s
        self._in_flight: set[_Item[M]] = set()
        self._tasks = BackgroundTasks()
        self._capacity = asyncio.Event()
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()
        self._running = False
        self._drain = True
        self._counters = dict.fromkeys(
            ("consumed", "finished", "failed", "dropped", "acked", "ack_errors", "fetch_errors"),
            0,
        )

    async def run(self) -> None:
        """Consume and deliver until :meth:`stop`; cancelling it abandons in-flight messages
        without acknowledging them (the server hands them out again)."""
        if self._running:
            raise RuntimeError("AckingConsumer.run() is already running")
        self._running = True
        try:
            await self.client.connect()
            if self.keep_interval_s is not None:
                self._tasks.spawn(self._keep_loop(self.keep_interval_s))
            await self._fetch_loop()
            await self._shutdown(drain=self._drain)
        except BaseException:
            await self._tasks.cancel_all()
            with contextlib.suppress(Exception):
                await self.client.close()
            raise
        finally:
            self._closed.set()

    async def stop(self, drain: bool = True) -> None:
        """Stop fetching; with ``drain``, wait (up to ``drain_timeout_s``) for in-flight
        events and acknowledge them; then close the client."""
        self._drain = drain
        self._stopping.set()
        self._capacity.set()
        if self._running:
            await self._closed.wait()

    def stats(self) -> dict[str, Any]:
        """Counters: consumed, finished, failed (unfinished outcomes, each retried), dropped
        (messages that cannot become events; acknowledged), acked, ack_errors, fetch_errors,
        in_flight."""
        return {**self._counters, "in_flight": len(self._in_flight)}

    # --- fetching -----------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            room = self.max_in_flight - len(self._in_flight)
            if room <= 0:
                self._capacity.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._capacity.wait(), self.poll_timeout_s)
                continue
            try:
                messages = await self.client.fetch(room, self.poll_timeout_s)
            except Exception as error:  # connection lost, server restarting: try again
                self._counters["fetch_errors"] += 1
                failures += 1
                delay = min(self.retry_backoff_s * 2**failures, self.max_retry_backoff_s)
                log.warning("fetch failed (retrying in %.1fs): %r", delay, error)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if not messages:
                continue
            if self._stopping.is_set() and not self._drain:
                return  # not handed out: the server gives them to the next consumer
            items = [item for item in map(self._item, messages) if item is not None]
            for start in range(0, len(items), self.batch_size):
                self._tasks.spawn(self._deliver(items[start : start + self.batch_size]))

    def _item(self, message: M) -> _Item[M] | None:
        self._counters["consumed"] += 1
        try:
            event = self.client.to_event(message)
        except Exception:
            # A message that can never become an event must not come back forever.
            log.exception("cannot map a message to a CloudEvent; acknowledged and dropped")
            self._counters["dropped"] += 1
            self._tasks.spawn(self._ack([message]))
            return None
        item = _Item(message, event)
        self._in_flight.add(item)
        return item

    # --- delivery -----------------------------------------------------------------------
    async def _deliver(self, items: list[_Item[M]]) -> None:
        attempt = 0
        pending = items
        while pending:
            outcomes = await send_to_sink(self.sink, [item.event for item in pending])
            done = [i for i, o in zip(pending, outcomes, strict=True) if o and o.finished]
            pending = [i for i, o in zip(pending, outcomes, strict=True) if not o or not o.finished]
            self._counters["finished"] += len(done)
            self._counters["failed"] += len(pending)
            if done:
                await self._ack([item.message for item in done])
                for item in done:
                    self._release(item)
            if pending:
                delay = min(self.retry_backoff_s * 2**attempt, self.max_retry_backoff_s)
                attempt += 1
                await asyncio.sleep(delay)

    async def _ack(self, messages: list[M]) -> None:
        try:
            await self.client.ack(messages)
        except Exception as error:
            # Not acknowledged: the server delivers them again (a duplicate, never a loss).
            self._counters["ack_errors"] += len(messages)
            log.warning("ack of %d messages failed: %r", len(messages), error)
            return
        self._counters["acked"] += len(messages)

    def _release(self, item: _Item[M]) -> None:
        self._in_flight.discard(item)
        self._capacity.set()

    async def _keep_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            messages = [item.message for item in self._in_flight]
            if messages:
                try:
                    await self.client.keep(messages)
                except Exception as error:  # the server may redeliver: a duplicate at worst
                    log.warning("extending %d leases failed: %r", len(messages), error)

    # --- lifecycle ----------------------------------------------------------------------
    async def _shutdown(self, drain: bool) -> None:
        if drain:
            deadline = time.monotonic() + self.drain_timeout_s
            while self._in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        await self._tasks.cancel_all()
        await self.client.close()
