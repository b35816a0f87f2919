"""The broker's Subscriber for a Service running on Serve: batched, chunked, concurrent calls
through a DeploymentHandle, one response per event."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from knray.broker.outcome import SubscriberResponse, unpack_responses
from knray.events import CloudEvent
from knray.events.packed import pack_events
from knray.manifests.service import KnativeService
from knray.serving.deployment import app_name

__all__ = ["ChunkSizer", "ServeSubscriber"]

_REPLICA_REFRESH_S = 1.0
# Serve calls in flight per subscriber. Each call costs the router a queue-length probe;
# thousands at once (small chunks of many concurrent batches) stall it for seconds.
MAX_CALLS_IN_FLIGHT = 32
# With containerConcurrency set, events in flight to a deployment are capped at this many
# times running replicas x containerConcurrency. The excess waits in the replicas (like
# Knative's queue-proxy), where the autoscaler sees it; a cap of exactly 1x kept the backlog
# upstream, invisible, and scale-up stalled.
QUEUE_FACTOR = 2


class ChunkSizer:
    """Events per call, adapted to the handler's measured speed: a call should take about
    ``target_call_s``; slow handlers get small chunks, cheap ones large ones."""

    def __init__(
        self,
        *,
        target_call_s: float = 0.1,
        min_size: int = 1,
        max_size: int = 500,
        initial_size: int = 8,
        smoothing: float = 0.3,
    ) -> None:
        self.target_call_s = target_call_s
        self.min_size = min_size
        self.max_size = max_size
        self._initial = initial_size
        self._smoothing = smoothing
        self._seconds_per_event: float | None = None
        self._parallelism = 1

    @property
    def seconds_per_event(self) -> float | None:
        """The smoothed time a call spends in the replica per event (None before any call)."""
        return self._seconds_per_event

    def observe(self, events: int, elapsed_s: float, parallelism: int = 1) -> None:
        """Record one finished call of ``events`` events that kept the handler busy for
        ``elapsed_s`` in total, on a replica running ``parallelism`` events at once."""
        if events <= 0 or elapsed_s < 0:
            return
        self._parallelism = max(1, parallelism)
        sample = elapsed_s / events
        if self._seconds_per_event is None:
            self._seconds_per_event = sample
        else:
            self._seconds_per_event += self._smoothing * (sample - self._seconds_per_event)

    def size(self, limit: int | None = None) -> int:
        """The next chunk size, at most ``limit`` when given."""
        if self._seconds_per_event is None:
            size = self._initial
        elif self._seconds_per_event <= 0:
            size = self.max_size
        else:
            # A call of n events takes about n / parallelism x seconds per event.
            size = math.floor(self.target_call_s * self._parallelism / self._seconds_per_event)
        size = max(self.min_size, min(self.max_size, size))
        if limit is not None:
            size = max(1, min(size, limit))
        return size


class ServeSubscriber:
    """Delivers batches to a Serve deployment (by application name) as the broker's Subscriber.

    A batch is split into chunks sized by :class:`ChunkSizer` and sent concurrently. With
    ``container_concurrency`` > 0, events in flight never exceed running replicas x
    concurrency (at least one replica's worth, for the cold start). A failed or timed-out call
    yields ``code=None`` for each event of its chunk. Works from any process connected to the
    Ray cluster; calls made while the deployment is at zero replicas wait in the handle until a
    replica starts.
    """

    def __init__(
        self,
        app: str,
        deployment: str | None = None,
        *,
        container_concurrency: int = 0,
        sizer: ChunkSizer | None = None,
        max_calls_in_flight: int = MAX_CALLS_IN_FLIGHT,
        senders: int = 1,
    ) -> None:
        self._app = app
        self._deployment = deployment or app
        self._concurrency = container_concurrency
        self.sizer = sizer or ChunkSizer()
        self._handle: Any = None
        self._in_flight = 0
        self._changed: asyncio.Condition | None = None
        self._replicas = 1
        self._replicas_at = -math.inf
        self._max_calls = max_calls_in_flight
        # Subscribers sending to the same deployment (one per dispatcher actor): each keeps
        # its share of the replicas x containerConcurrency events in flight.
        self._senders = max(1, senders)
        self._calls: asyncio.Semaphore | None = None
        self._probe: asyncio.Lock | None = None

    @classmethod
    def for_service(
        cls, service: KnativeService, *, application: str | None = None, **options: Any
    ) -> ServeSubscriber:
        """A subscriber for a Service deployed with :func:`deploy_service` (an application of
        its own), or hosted as a deployment of the Serve ``application``."""
        name = app_name(service)
        concurrency = service.spec.template.spec.container_concurrency or 0
        return cls(application or name, name, container_concurrency=concurrency, **options)

    @property
    def address(self) -> str:
        """``serve://<app>/<deployment>``."""
        return f"serve://{self._app}/{self._deployment}"

    async def _get_handle(self) -> Any:
        if self._handle is None:
            from ray import serve  # noqa: PLC0415

            self._handle = await asyncio.to_thread(
                serve.get_deployment_handle, self._deployment, self._app
            )
        return self._handle

    def _running_replicas(self) -> int:
        from ray import serve  # noqa: PLC0415

        status = serve.status().applications[self._app].deployments[self._deployment]
        states: dict[Any, int] = status.replica_states
        return sum(n for state, n in states.items() if getattr(state, "value", state) == "RUNNING")

    async def _limit(self) -> int | None:
        if self._concurrency <= 0:
            return None
        now = time.monotonic()
        if now - self._replicas_at >= _REPLICA_REFRESH_S:
            self._replicas_at = now
            try:
                self._replicas = max(1, await asyncio.to_thread(self._running_replicas))
            except Exception:
                self._replicas = max(1, self._replicas)
        limit = QUEUE_FACTOR * self._concurrency * self._replicas
        return max(1, limit // self._senders)

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        """Deliver ``events``; one response per event, in order; never raises per event."""
        if not events:
            return []
        if self._changed is None:
            self._changed = asyncio.Condition()
            self._calls = asyncio.Semaphore(self._max_calls)
            self._probe = asyncio.Lock()
        handle = await self._get_handle()
        responses: list[SubscriberResponse | None] = [None] * len(events)
        tasks: list[asyncio.Task[None]] = []
        start = 0
        assert self._probe is not None
        while self.sizer.seconds_per_event is None and start < len(events):
            # Speed unknown: one chunk measures it before the rest is cut (a guess applied to
            # every concurrent batch at once sends a flood of tiny calls).
            async with self._probe:
                if self.sizer.seconds_per_event is not None:
                    break
                chunk = await self._next_chunk(events, start)
                await self._call(handle, chunk, start, responses, timeout_s)
                start += len(chunk)
        while start < len(events):
            chunk = await self._next_chunk(events, start)
            tasks.append(
                asyncio.create_task(self._call(handle, chunk, start, responses, timeout_s))
            )
            start += len(chunk)
        await asyncio.gather(*tasks)
        return [
            r if r is not None else SubscriberResponse(code=None, error="no response")
            for r in responses
        ]

    async def _next_chunk(self, events: Sequence[CloudEvent], start: int) -> list[CloudEvent]:
        """The next chunk from ``start``, sized now, its events counted as in flight (waiting
        for room under the containerConcurrency limit when there is one)."""
        limit = await self._limit()
        chunk = list(events[start : start + self.sizer.size(limit)])
        if limit is not None:
            await self._acquire(len(chunk), limit)
        else:
            self._in_flight += len(chunk)
        return chunk

    async def _acquire(self, count: int, limit: int) -> None:
        assert self._changed is not None
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._in_flight == 0 or self._in_flight + count <= limit
            )
            self._in_flight += count

    async def _release(self, count: int) -> None:
        assert self._changed is not None
        async with self._changed:
            self._in_flight -= count
            self._changed.notify_all()

    async def _call(
        self,
        handle: Any,
        chunk: list[CloudEvent],
        offset: int,
        responses: list[SubscriberResponse | None],
        timeout_s: float | None,
    ) -> None:
        assert self._calls is not None
        await self._calls.acquire()
        response = handle.handle_packed.remote(pack_events(chunk))
        try:
            packed, busy_s, parallelism = await asyncio.wait_for(_wait(response), timeout_s)
            results = unpack_responses(packed)
            if len(results) != len(chunk):
                raise RuntimeError(f"{len(results)} responses for {len(chunk)} events")
            self.sizer.observe(len(chunk), busy_s, parallelism)
        except TimeoutError:
            response.cancel()
            results = [SubscriberResponse(code=None, error=f"timed out after {timeout_s}s")] * len(
                chunk
            )
        except Exception as error:
            results = [
                SubscriberResponse(code=None, error=f"{type(error).__name__}: {error}")
            ] * len(chunk)
        finally:
            self._calls.release()
            await self._release(len(chunk))
        responses[offset : offset + len(chunk)] = results


async def _wait(response: Any) -> Any:
    return await response
