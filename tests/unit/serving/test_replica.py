"""The replica class without Ray: per-event outcomes, batch failures, containerConcurrency
and the events-in-flight metric."""

from __future__ import annotations

import asyncio
import threading
import time

from knray.events import CloudEvent
from knray.serving import ServiceReplica, batch_handler

HERE = __name__
_state = {"running": 0, "peak": 0}
_lock = threading.Lock()


def _event(index: int, kind: str = "demo") -> CloudEvent:
    return CloudEvent({"id": str(index), "source": "/s", "type": kind, "specversion": "1.0"})


def flaky(event: CloudEvent) -> CloudEvent | None:
    if event.get_type() == "boom":
        raise KeyError("missing")
    if event.get_type() == "ping":
        return _event(int(event.get_id()), "pong")
    return None


def counted(event: CloudEvent) -> None:
    with _lock:
        _state["running"] += 1
        _state["peak"] = max(_state["peak"], _state["running"])
    time.sleep(0.02)
    with _lock:
        _state["running"] -= 1


async def gate(event: CloudEvent) -> None:
    await asyncio.sleep(0.2)


@batch_handler(max_batch_size=3, batch_wait_timeout_s=0.05)
def batched(events: list[CloudEvent]) -> list[object]:
    return [RuntimeError("bad") if e.get_type() == "boom" else None for e in events]


@batch_handler(max_batch_size=3)
def broken_batch(events: list[CloudEvent]) -> list[object]:
    return []


async def test_per_event_outcomes_and_replies() -> None:
    replica = ServiceReplica("default/x", f"{HERE}:flaky")
    responses = await replica.handle([_event(1, "ping"), _event(2, "boom"), _event(3)])
    assert [r.code for r in responses] == [200, 500, 200]
    assert responses[0].reply is not None
    assert responses[0].reply.get_type() == "pong"
    assert responses[1].error == "KeyError: 'missing'"


async def test_batch_handler_events_fail_alone() -> None:
    replica = ServiceReplica("default/x", f"{HERE}:batched")
    events = [_event(i, "boom" if i == 4 else "demo") for i in range(8)]
    responses = await replica.handle(events)
    assert [r.code for r in responses] == [500 if i == 4 else 200 for i in range(8)]
    bad = await ServiceReplica("default/x", f"{HERE}:broken_batch").handle([_event(1)])
    assert bad[0].code == 500


async def test_container_concurrency_caps_events_at_once() -> None:
    _state["peak"] = 0
    replica = ServiceReplica("default/x", f"{HERE}:counted", container_concurrency=2)
    responses = await replica.handle([_event(i) for i in range(10)])
    assert all(r.code == 200 for r in responses)
    assert _state["peak"] == 2


async def test_events_in_flight_are_reported() -> None:
    replica = ServiceReplica("default/x", f"{HERE}:gate", container_concurrency=1)
    assert replica.record_autoscaling_stats() == {"events_in_flight": 0.0}
    call = asyncio.create_task(replica.handle([_event(i) for i in range(5)]))
    await asyncio.sleep(0.05)
    assert replica.events_in_flight == 5  # one running, four waiting in the replica
    assert replica.record_autoscaling_stats()["events_in_flight"] == 5.0
    call.cancel()


_batch_sizes: list[int] = []


@batch_handler(max_batch_size=4, batch_wait_timeout_s=0.2)
def sized(events: list[CloudEvent]) -> list[object]:
    _batch_sizes.append(len(events))
    return [None] * len(events)


async def test_batches_respect_max_size_and_wait_for_stragglers() -> None:
    _batch_sizes.clear()
    replica = ServiceReplica("default/x", sized)  # the handler object itself, as shipped
    responses = await replica.handle([_event(i) for i in range(10)])
    assert [r.code for r in responses] == [200] * 10
    assert _batch_sizes == [4, 4, 2]
    # Events arriving apart within batch_wait_timeout_s share one batch.
    _batch_sizes.clear()

    async def later(index: int) -> list[object]:
        await asyncio.sleep(0.05 * index)
        return list(await replica.handle([_event(index)]))

    await asyncio.gather(*(later(i) for i in range(3)))
    assert _batch_sizes == [3]


def test_a_replica_can_be_used_from_successive_event_loops() -> None:
    replica = ServiceReplica("default/x", f"{HERE}:batched")
    for _ in range(2):
        responses = asyncio.run(replica.handle([_event(1), _event(2, "boom")]))
        assert [r.code for r in responses] == [200, 500]
