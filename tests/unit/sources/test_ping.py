"""PingScheduler with a clock the test controls: ticks in simulated time, no waiting."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from knray.broker.outcome import DeliveryStatus, Outcome
from knray.events import CloudEvent
from knray.manifests import PingSource
from knray.sources.ping import EVENT_TYPE, PingScheduler, ping_event, schedule_ticks


class ManualClock:
    """Time moves only when the test calls advance()."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, moment: datetime) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= moment)

    async def advance(self, seconds: float) -> None:
        async with self._changed:
            self._now += timedelta(seconds=seconds)
            self._changed.notify_all()
        for _ in range(20):  # let the scheduler run what became due
            await asyncio.sleep(0)


class Sink:
    def __init__(self, failures: int = 0) -> None:
        self.events: list[CloudEvent] = []
        self.failures = failures

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        if self.failures > 0:
            self.failures -= 1
            return [Outcome(DeliveryStatus.FAILED)] * len(events)
        self.events.extend(events)
        return [Outcome(DeliveryStatus.DELIVERED)] * len(events)


def ping(**spec: Any) -> PingSource:
    return PingSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1",
            "kind": "PingSource",
            "metadata": {"name": "heartbeat", "namespace": "ops"},
            "spec": {"schedule": "*/1 * * * *", "sink": {"uri": "http://sink/"}, **spec},
        }
    )


START = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


async def test_every_minute_fires_once_at_each_minute_boundary() -> None:
    clock = ManualClock(START)
    sink = Sink()
    scheduler = PingScheduler(
        ping(data='{"beat": 1}', contentType="application/json"), sink, clock=clock
    )
    task = asyncio.create_task(scheduler.run())
    await clock.advance(0)
    assert sink.events == []  # 12:00:30: nothing due yet
    await clock.advance(29)
    assert sink.events == []  # 12:00:59
    await clock.advance(1)
    assert [e.get_attributes()["time"] for e in sink.events] == ["2026-03-01T12:01:00Z"]
    for _ in range(3):
        await clock.advance(60)
    await scheduler.stop()
    await task

    times = [e.get_attributes()["time"] for e in sink.events]
    assert times == [f"2026-03-01T12:0{m}:00Z" for m in range(1, 5)]
    assert len({e.get_id() for e in sink.events}) == 4  # one event, one id, per tick
    first = sink.events[0]
    assert first.get_type() == EVENT_TYPE == "dev.knative.sources.ping"
    assert first.get_source() == "/apis/v1/namespaces/ops/pingsources/heartbeat"
    assert first.get_data() == {"beat": 1}
    assert first.get_attributes()["datacontenttype"] == "application/json"
    assert scheduler.stats()["ticks"] == 4


async def test_a_clock_jump_skips_missed_ticks_instead_of_bursting() -> None:
    clock = ManualClock(START)
    sink = Sink()
    scheduler = PingScheduler(ping(), sink, clock=clock)
    task = asyncio.create_task(scheduler.run())
    await clock.advance(0)
    await clock.advance(10 * 60)  # 12:10:30 at once
    await clock.advance(30)  # 12:11:00
    await scheduler.stop()
    await task
    assert [e.get_attributes()["time"] for e in sink.events] == [
        "2026-03-01T12:01:00Z",
        "2026-03-01T12:11:00Z",
    ]
    assert scheduler.stats()["missed"] == 9


async def test_an_unfinished_outcome_is_retried_until_it_finishes() -> None:
    clock = ManualClock(START)
    sink = Sink(failures=2)
    scheduler = PingScheduler(ping(), sink, clock=clock, retry_backoff_s=0.001)
    task = asyncio.create_task(scheduler.run())
    await clock.advance(0)
    await clock.advance(30)
    for _ in range(50):
        if sink.events:
            break
        await asyncio.sleep(0.005)
    await scheduler.stop()
    await task
    assert len(sink.events) == 1
    assert scheduler.stats()["failed"] == 2


def test_the_same_tick_always_has_the_same_id_and_other_ticks_differ() -> None:
    source = ping()
    tick = datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
    assert ping_event(source, tick).get_id() == ping_event(source, tick).get_id()
    assert (
        ping_event(source, tick).get_id()
        != ping_event(source, tick + timedelta(minutes=1)).get_id()
    )


def test_timezone_shifts_the_schedule() -> None:
    # 09:00 every day in Paris is 08:00 UTC in winter and 07:00 UTC in summer (DST).
    source = ping(schedule="0 9 * * *", timezone="Europe/Paris")
    ticks = schedule_ticks(source, datetime(2026, 3, 28, 0, 0, tzinfo=UTC))
    assert [next(ticks), next(ticks)] == [
        datetime(2026, 3, 28, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
    ]
    prefixed = schedule_ticks(ping(schedule="CRON_TZ=Asia/Tokyo 0 9 * * *"), START)
    assert next(prefixed) == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def test_every_descriptor() -> None:
    ticks = schedule_ticks(ping(schedule="@every 90s"), START)
    assert [next(ticks), next(ticks)] == [
        START + timedelta(seconds=90),
        START + timedelta(seconds=180),
    ]


def test_data_base64_is_sent_as_bytes_and_overrides_are_added() -> None:
    raw = bytes([0, 1, 2, 255])
    source = ping(
        dataBase64=base64.b64encode(raw).decode(),
        contentType="application/octet-stream",
        ceOverrides={"extensions": {"team": "ops"}},
    )
    event = ping_event(source, START)
    assert event.encoded_data() == raw
    assert event.get_attributes()["datacontenttype"] == "application/octet-stream"
    assert event.get_extension("team") == "ops"


def test_no_data_means_no_data_and_no_content_type() -> None:
    event = ping_event(ping(contentType="text/plain"), START)
    assert event.encoded_data() == b""
    assert "datacontenttype" not in event.get_attributes()


@pytest.mark.parametrize("schedule", ["*/1 * * * *", "@hourly"])
def test_ticks_are_strictly_after_the_start(schedule: str) -> None:
    first = next(schedule_ticks(ping(schedule=schedule), START))
    assert first > START
