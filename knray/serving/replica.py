"""The Serve deployment class: runs a Service's handler, one outcome per event, and reports
the events it holds (running and queued) to knray's autoscaling policy."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from knray.broker.outcome import PackedResponses, SubscriberResponse, pack_responses
from knray.events import CloudEvent
from knray.events.packed import PackedEvents, unpack_events
from knray.serving.handlers import (
    LoadedHandler,
    handler_from_object,
    load_handler,
    response_for_result,
    split_results,
)
from knray.serving.policy import EVENTS_IN_FLIGHT

__all__ = ["DEFAULT_SYNC_THREADS", "ServiceReplica"]

# Threads for sync handlers when containerConcurrency is unbounded.
DEFAULT_SYNC_THREADS = 16


def _failure(error: BaseException) -> SubscriberResponse:
    return SubscriberResponse(code=500, error=f"{type(error).__name__}: {error}")


class ServiceReplica:
    """One replica of a Knative Service: ``handle(events)`` returns one response per event.

    ``handler`` is a ``package.module:attr`` spec, or the handler function or class itself
    (one defined in a notebook, shipped by value). ``container_concurrency`` (0: unbounded)
    caps events processed at once; the others wait here and still count as in flight.
    """

    def __init__(
        self,
        service: str,
        handler: str | object,
        container_concurrency: int = 0,
        search_path: Sequence[str] = (),
    ) -> None:
        for entry in reversed(list(search_path)):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        self._service = service
        self._handler: LoadedHandler = (
            load_handler(handler, service=service)
            if isinstance(handler, str)
            else handler_from_object(handler, service=service)
        )
        self._concurrency = container_concurrency
        self._limit = (
            asyncio.Semaphore(container_concurrency) if container_concurrency > 0 else None
        )
        threads = container_concurrency if container_concurrency > 0 else DEFAULT_SYNC_THREADS
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="knray-handler")
        # Events this replica runs at once: its threads for a sync handler; an async one
        # interleaves up to containerConcurrency (counted as 100 when unbounded).
        self._parallelism = threads
        if self._handler.is_async:
            self._parallelism = container_concurrency if container_concurrency > 0 else 100
        self._in_flight = 0
        now = time.monotonic()
        self._area = 0.0
        self._changed_at = now
        self._reported_at = now
        self._batch_queue: (
            asyncio.Queue[tuple[CloudEvent, asyncio.Future[SubscriberResponse]]] | None
        )
        self._batch_queue = None
        self._batch_workers: list[asyncio.Task[None]] = []
        # Everything loaded so far (Ray, Serve, knray, the handler and its model) lives as long
        # as the process: freezing it keeps the collector from walking it again in every full
        # collection, which stalled the data path for 100-300 ms (see knray.runtime.actors).
        gc.freeze()
        self._batch_loop_owner: asyncio.AbstractEventLoop | None = None

    # --- events in flight ---------------------------------------------------------------
    def _add(self, delta: int) -> None:
        now = time.monotonic()
        self._area += self._in_flight * (now - self._changed_at)
        self._changed_at = now
        self._in_flight += delta

    @property
    def events_in_flight(self) -> int:
        """Events this replica holds now (running and waiting)."""
        return self._in_flight

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's hook: the time-weighted average of events in flight since the last call
        (the current count if that is higher, so a burst is seen at once)."""
        now = time.monotonic()
        self._add(0)
        elapsed = now - self._reported_at
        average = self._area / elapsed if elapsed > 0 else float(self._in_flight)
        self._area = 0.0
        self._reported_at = now
        return {EVENTS_IN_FLIGHT: max(average, float(self._in_flight))}

    # --- the data path ------------------------------------------------------------------
    async def handle(self, events: list[CloudEvent]) -> list[SubscriberResponse]:
        """Run the handler on each event; never raises for a bad event."""
        responses, _, _ = await self.handle_timed(events)
        return responses

    async def handle_packed(self, packed: PackedEvents) -> tuple[PackedResponses, float, int]:
        """``handle_timed`` in the wire form callers use (see knray.events.packed)."""
        responses, busy_s, parallelism = await self.handle_timed(unpack_events(packed))
        return pack_responses(responses), busy_s, parallelism

    async def handle_timed(
        self, events: list[CloudEvent]
    ) -> tuple[list[SubscriberResponse], float, int]:
        """``handle`` plus how fast this replica works: the handler's busy seconds for these
        events (added up, as if run one after another) and how many it runs at once.

        The caller sizes its chunks on these: its own round-trip time also counts the calls
        queued ahead of it, and a call's wall time hides that events run in parallel; either
        one shrinks chunks to a single event under load.
        """
        if self._handler.batch is not None:
            started = time.monotonic()
            responses = await self._handle(events)
            return responses, time.monotonic() - started, 1
        busy = [0.0]
        responses = await self._handle(events, busy)
        return responses, busy[0], self._parallelism

    async def _handle(
        self, events: list[CloudEvent], busy: list[float] | None = None
    ) -> list[SubscriberResponse]:
        self._add(len(events))
        try:
            if self._handler.batch is not None:
                return list(await asyncio.gather(*(self._enqueue(event) for event in events)))
            return list(await asyncio.gather(*(self._one(event, busy) for event in events)))
        finally:
            self._add(-len(events))

    async def _one(self, event: CloudEvent, busy: list[float] | None) -> SubscriberResponse:
        try:
            if self._limit is None:
                result = await self._timed_call(event, busy)
            else:
                async with self._limit:
                    result = await self._timed_call(event, busy)
        except Exception as error:
            return _failure(error)
        return response_for_result(result)

    async def _timed_call(self, event: CloudEvent, busy: list[float] | None) -> object:
        started = time.monotonic()
        try:
            return await self._handler.call(event, self._executor)
        finally:
            if busy is not None:
                busy[0] += time.monotonic() - started

    async def _enqueue(self, event: CloudEvent) -> SubscriberResponse:
        loop = asyncio.get_running_loop()
        if self._batch_queue is None or self._batch_loop_owner is not loop:
            # A replica lives on one loop in Serve; in-process use (knray.testing) may call it
            # from a new loop each time, where the old queue and workers no longer run.
            self._batch_loop_owner = loop
            self._batch_queue = asyncio.Queue()
            workers = 1
            batch = self._handler.batch
            if self._concurrency > 0 and batch is not None:
                workers = max(1, self._concurrency // batch.max_batch_size)
            self._batch_workers = [
                asyncio.create_task(self._batch_loop(self._batch_queue)) for _ in range(workers)
            ]
        future: asyncio.Future[SubscriberResponse] = loop.create_future()
        await self._batch_queue.put((event, future))
        return await future

    async def _batch_loop(
        self, queue: asyncio.Queue[tuple[CloudEvent, asyncio.Future[SubscriberResponse]]]
    ) -> None:
        options = self._handler.batch
        assert options is not None
        size = options.max_batch_size
        if self._concurrency > 0:
            size = min(size, self._concurrency)
        while True:
            items = [await queue.get()]
            deadline = time.monotonic() + options.batch_wait_timeout_s
            while len(items) < size:
                if not queue.empty():
                    items.append(queue.get_nowait())
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                results = await self._handler.call([event for event, _ in items], self._executor)
                responses = split_results(results, len(items))
            except Exception as error:
                responses = [_failure(error)] * len(items)
            for (_, future), response in zip(items, responses, strict=True):
                if not future.done():
                    future.set_result(response)
