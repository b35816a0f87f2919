"""What the message-server source tests share: a recording sink that can hold the stream,
a server check that fails (never skips) when a server is down, and the kill scenario."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from knray.broker.outcome import DeliveryStatus, Outcome
from knray.events import CloudEvent
from knray.sources.source import Source

DELIVERED = Outcome(DeliveryStatus.DELIVERED)
FAILED = Outcome(DeliveryStatus.FAILED, error="try again")


def require_server(host: str, port: int, what: str) -> None:
    """Fail the test (not skip) when ``what`` does not answer: `.ci/run` starts it."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        pytest.fail(
            f"{what} is not running on {host}:{port} ({error}); start it with "
            "`bash scripts/services.sh`"
        )


class RecordingSink:
    """Records what it accepts; after ``gate_after`` events it holds deliveries until
    ``gate`` is set (the stream stops mid-way whatever the machine's speed); ``fail``
    answers FAILED for chosen events."""

    def __init__(
        self,
        gate: asyncio.Event | None = None,
        gate_after: int = 0,
        fail: Callable[[CloudEvent], bool] | None = None,
    ) -> None:
        self.events: list[CloudEvent] = []
        self.gate = gate
        self.gate_after = gate_after
        self.fail = fail

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        if self.gate is not None and len(self.events) >= self.gate_after:
            await self.gate.wait()
        outcomes = []
        for event in events:
            if self.fail is not None and self.fail(event):
                outcomes.append(FAILED)
            else:
                self.events.append(event)
                outcomes.append(DELIVERED)
        return outcomes

    def data(self) -> list[str]:
        return [event.encoded_data().decode() for event in self.events]


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def kill_mid_stream_loses_nothing(
    make_consumer: Callable[[RecordingSink], Source],
    produce: Callable[[list[str]], Awaitable[Any]],
    count: int,
    max_in_flight: int,
    value_of: Callable[[CloudEvent], str] = lambda event: event.encoded_data().decode(),
) -> dict[str, int]:
    """Produce ``count`` messages (values "0", "1", ...); a consumer is cancelled (no stop, no
    drain, no ack) while events are in flight; a successor must deliver every message
    (``value_of`` reads the value back from an event). Returns the figures."""
    values = [str(i) for i in range(count)]
    await produce(values)
    gate = asyncio.Event()
    sink = RecordingSink(gate=gate, gate_after=count // 4)
    victim = make_consumer(sink)
    victim_task = asyncio.create_task(victim.run())
    await wait_until(
        lambda: len(sink.events) >= count // 4 and victim.stats()["in_flight"] > 0,
        60,
        "a quarter of the stream, with events in flight",
    )
    acked_before = victim.stats()["acked"]
    victim_task.cancel()  # abrupt: no stop(), no drain, no ack of what is in flight
    with pytest.raises(asyncio.CancelledError):
        await victim_task
    delivered_before = len(sink.events)
    assert delivered_before < count
    gate.set()

    successor = make_consumer(sink)
    successor_task = asyncio.create_task(successor.run())

    def received() -> list[str]:
        return [value_of(event) for event in sink.events]

    def all_received() -> bool:
        if successor_task.done():  # a consumer that ended on its own failed: say why
            successor_task.result()
            raise AssertionError(f"the successor stopped by itself: {successor.stats()}")
        return set(received()) >= set(values)

    try:
        await wait_until(all_received, 60, "every message after the kill")
    except AssertionError as error:
        missing = len(set(values) - set(received()))
        raise AssertionError(
            f"{error}: {missing} missing; victim {victim.stats()}, successor {successor.stats()}"
        ) from None
    await successor.stop()
    await successor_task

    seen = Counter(received())
    assert set(seen) == set(values)
    duplicates = sum(seen.values()) - count
    report = f"{delivered_before=} {acked_before=} {duplicates=}"
    # At-least-once: only what the victim had not acknowledged can come again.
    assert acked_before <= delivered_before, report
    assert duplicates <= delivered_before - acked_before + max_in_flight, report
    return {"delivered_before": delivered_before, "duplicates": duplicates}
