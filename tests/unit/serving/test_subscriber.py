"""Chunk sizes follow the handler's measured speed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from knray import CloudEvent
from knray.broker import SubscriberResponse
from knray.broker.outcome import PackedResponses, pack_responses
from knray.events.packed import PackedEvents, unpack_events
from knray.serving import ChunkSizer, ServeSubscriber


def test_unknown_speed_uses_the_initial_size() -> None:
    assert ChunkSizer(initial_size=8).size() == 8


def test_slow_handlers_get_small_chunks_and_cheap_ones_large() -> None:
    slow = ChunkSizer(target_call_s=0.1)
    slow.observe(4, 0.2)  # 50 ms per event
    assert slow.size() == 2
    cheap = ChunkSizer(target_call_s=0.1, max_size=500)
    cheap.observe(100, 0.001)
    assert cheap.size() == 500


def test_chunks_respect_the_concurrency_limit_and_minimum() -> None:
    sizer = ChunkSizer(initial_size=50)
    assert sizer.size(limit=4) == 4
    sizer.observe(1, 10.0)
    assert sizer.size() == 1


def test_speed_is_smoothed() -> None:
    sizer = ChunkSizer(target_call_s=1.0, smoothing=0.5)
    sizer.observe(10, 1.0)  # 0.1 s per event
    sizer.observe(10, 0.0)
    assert sizer.seconds_per_event == 0.05
    assert sizer.size() == 20


class _QueueingHandle:
    """A fake DeploymentHandle: every call waits behind the calls before it (one replica
    working through a queue), and reports only its own time in the replica."""

    def __init__(self, per_event_s: float) -> None:
        self.per_event_s = per_event_s
        self.chunk_sizes: list[int] = []
        self._lock = asyncio.Lock()
        self.handle_packed = self

    def remote(self, packed: PackedEvents) -> Awaitable[tuple[PackedResponses, float, int]]:
        chunk = unpack_events(packed)
        self.chunk_sizes.append(len(chunk))
        return self._run(chunk)

    async def _run(self, chunk: list[CloudEvent]) -> tuple[PackedResponses, float, int]:
        async with self._lock:
            busy_s = self.per_event_s * len(chunk)
            await asyncio.sleep(busy_s)
            return pack_responses([SubscriberResponse(200)] * len(chunk)), busy_s, 1


async def test_chunks_do_not_shrink_when_calls_queue_behind_each_other() -> None:
    # Round trips grow with the queue (many chunks in flight at once); sizing on them made
    # chunks collapse to one event. Sizing on the replica's own time keeps them large.
    handle = _QueueingHandle(per_event_s=0.0001)
    subscriber = ServeSubscriber("app", sizer=ChunkSizer(target_call_s=0.01, initial_size=8))
    subscriber._handle = handle
    events = [
        CloudEvent({"specversion": "1.0", "id": str(i), "source": "/s", "type": "t"})
        for i in range(400)
    ]
    for start in range(0, 400, 100):
        responses = await subscriber.send(events[start : start + 100], None)
        assert [r.code for r in responses] == [200] * 100
    assert subscriber.sizer.size() == 100  # 0.01 s / 0.0001 s per event
    assert handle.chunk_sizes[-1] >= 50


def test_parallel_replicas_get_chunks_sized_for_their_parallelism() -> None:
    # A 50 ms handler on a replica running 20 events at once: a 0.1 s call holds 40 events,
    # not 2 (sizing as if events ran one after another starved the replicas).
    sizer = ChunkSizer(target_call_s=0.1)
    sizer.observe(40, 40 * 0.05, parallelism=20)
    assert sizer.size() == 40
