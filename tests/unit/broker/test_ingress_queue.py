"""The in-memory ingress queue: all-or-nothing admission, capacity, redelivery, draining."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from knray.broker import DeliveryStatus, Outcome
from knray.broker.ingress_queue import IngressQueue
from knray.events import CloudEvent
from tests.unit.broker.fakes import make_event


class GatedSink:
    """Holds every delivery until ``gate`` is set; fails each event ``fail_first`` times."""

    def __init__(self, fail_first: int = 0) -> None:
        self.gate = asyncio.Event()
        self.calls: list[list[str]] = []
        self.fail_first = fail_first
        self.attempts: dict[str, int] = {}

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        self.calls.append([e.get_id() for e in events])
        await self.gate.wait()
        outcomes = []
        for event in events:
            n = self.attempts[event.get_id()] = self.attempts.get(event.get_id(), 0) + 1
            failed = n <= self.fail_first
            outcomes.append(Outcome(DeliveryStatus.FAILED if failed else DeliveryStatus.DELIVERED))
        return outcomes


async def until(check: object, timeout_s: float = 5.0) -> None:
    async def loop() -> None:
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.001)

    await asyncio.wait_for(loop(), timeout_s)


async def test_admission_is_all_or_nothing_up_to_the_capacity() -> None:
    sink = GatedSink()
    queue = IngressQueue(sink, capacity_events=3)
    assert await queue.accept([make_event("1"), make_event("2")]) is None
    refused = await queue.accept([make_event("3"), make_event("4")])
    assert refused is not None
    assert "full" in refused
    assert await queue.accept([make_event("3")]) is None
    assert queue.held == 3
    assert queue.stats()["refused"] == 2
    sink.gate.set()
    await until(lambda: queue.held == 0)
    assert sorted(i for call in sink.calls for i in call) == ["1", "2", "3"]
    assert queue.stats()["finished"] == 3
    await queue.close()


async def test_unfinished_outcomes_are_redelivered_never_dropped() -> None:
    sink = GatedSink(fail_first=2)
    sink.gate.set()
    queue = IngressQueue(sink, retry_backoff_s=0.001)
    assert await queue.accept([make_event("a"), make_event("b")]) is None
    await until(lambda: queue.held == 0)
    assert sink.attempts == {"a": 3, "b": 3}
    assert queue.stats()["retries"] == 4
    await queue.close()


async def test_a_raising_sink_is_retried() -> None:
    calls = 0

    class Flaky:
        async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("dispatcher gone")
            return [Outcome(DeliveryStatus.DELIVERED)] * len(events)

    queue = IngressQueue(Flaky(), retry_backoff_s=0.001)
    assert await queue.accept([make_event("1")]) is None
    await until(lambda: queue.held == 0)
    assert calls == 2
    await queue.close()


async def test_batches_are_capped_and_drain_refuses_new_events() -> None:
    sink = GatedSink()
    queue = IngressQueue(sink, batch_size=2, max_batches_in_flight=1)
    assert await queue.accept([make_event(str(i)) for i in range(5)]) is None
    await until(lambda: len(sink.calls) == 1)
    assert sink.calls == [["0", "1"]]  # one batch in flight at a time
    sink.gate.set()
    assert await queue.drain(timeout_s=5.0) == 0
    assert [len(call) for call in sink.calls] == [2, 2, 1]
    refused = await queue.accept([make_event("late")])
    assert refused is not None
    assert "shutting down" in refused
    await queue.close()
