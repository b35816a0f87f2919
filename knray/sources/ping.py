"""PingScheduler: a PingSource's events on its cron schedule (knative/eventing ``mtping``).

Event attributes as Knative's adapter sets them (``runner.go`` ``makeEvent``): type
``dev.knative.sources.ping``, source ``/apis/v1/namespaces/NS/pingsources/NAME``, data from
``data`` (or the bytes ``dataBase64`` encodes) with ``contentType`` as ``datacontenttype``,
``ceOverrides`` extensions. Two deliberate differences: ``time`` is the scheduled tick (not
the send time) and ``id`` is derived from the source and the tick (Knative draws a random
UUID), so the same tick always carries the same id and a sink can tell a resend apart.

One tick is one event cluster-wide: the runtime runs exactly one scheduler per PingSource,
in a named Ray actor (a name is unique in a Ray namespace, so no replica can fire twice;
Knative elects a leader among adapter replicas for the same reason). A restarted scheduler
starts with the first tick after the current time, so it never sends a tick again; a tick
whose delivery was in progress when the scheduler died is lost, as in Knative. While the
scheduler lives, an unfinished outcome is retried with backoff until it finishes.
The schedule's time zone is ``spec.timezone``, else a ``CRON_TZ=``/``TZ=`` prefix, else UTC.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from knray.broker.outcome import EventSink
from knray.events import CloudEvent
from knray.manifests.base import Resource
from knray.manifests.durations import parse_go_duration_s
from knray.manifests.ping_source import PingSource
from knray.sources.background import BackgroundTasks

__all__ = [
    "EVENT_TYPE",
    "Clock",
    "PingScheduler",
    "ScaledClock",
    "SystemClock",
    "consumer",
    "event_source",
    "ping_event",
    "schedule_ticks",
]

log = logging.getLogger(__name__)

# v1.PingSourceEventType
EVENT_TYPE: Final = "dev.knative.sources.ping"
_MAX_SLEEP_S: Final = 30.0


class Clock(Protocol):
    """The time a scheduler follows: ``now()`` is timezone-aware; ``sleep_until`` returns
    once ``now()`` has reached ``moment``."""

    def now(self) -> datetime: ...

    async def sleep_until(self, moment: datetime) -> None: ...


class SystemClock:
    """Wall-clock time (UTC); sleeps in slices so a changed system clock is noticed."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        while (remaining := (moment - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, _MAX_SLEEP_S))


@dataclass(frozen=True)
class ScaledClock:
    """Simulated time running ``speed`` times faster than the wall clock, from ``start``.

    ``ScaledClock.starting_now(60)`` turns a minute schedule into one tick per real second;
    it pickles, so a test or demo can hand it to a scheduler in another process.
    """

    speed: float
    start: datetime
    start_real_s: float = field(default_factory=time.time)

    @classmethod
    def starting_now(cls, speed: float) -> ScaledClock:
        return cls(speed, datetime.now(UTC))

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.start_real_s) * self.speed)

    async def sleep_until(self, moment: datetime) -> None:
        while (remaining := (moment - self.now()).total_seconds()) > 0:
            await asyncio.sleep(remaining / self.speed)


def event_source(namespace: str, name: str) -> str:
    """``/apis/v1/namespaces/NS/pingsources/NAME`` (v1.PingSourceSource)."""
    return f"/apis/v1/namespaces/{namespace}/pingsources/{name}"


def _zone_and_fields(source: PingSource) -> tuple[tzinfo, str]:
    text = source.spec.schedule.strip()
    zone: tzinfo = UTC
    if text.startswith(("CRON_TZ=", "TZ=")):
        prefix, _, text = text.partition(" ")
        zone = ZoneInfo(prefix.split("=", 1)[1])
    if source.spec.timezone:
        zone = ZoneInfo(source.spec.timezone)
    return zone, text.strip()


def schedule_ticks(source: PingSource, after: datetime) -> Iterator[datetime]:
    """The schedule's ticks strictly after ``after``, in UTC, endlessly."""
    zone, fields = _zone_and_fields(source)
    if fields.startswith("@every "):
        step_s = parse_go_duration_s(fields.removeprefix("@every ").strip())
        if step_s <= 0:
            raise ValueError(f"invalid schedule {source.spec.schedule!r}: period must be > 0")
        moment = after
        while True:
            moment += timedelta(seconds=step_s)
            yield moment.astimezone(UTC)
    cron = croniter(fields, after.astimezone(zone))
    while True:
        yield cron.get_next(datetime).astimezone(UTC)


def _rfc3339(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


def ping_event(source: PingSource, tick: datetime) -> CloudEvent:
    """The event of one tick."""
    origin = event_source(source.namespace, source.name)
    time_text = _rfc3339(tick)
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{origin}#{time_text}")),
        "source": origin,
        "type": EVENT_TYPE,
        "time": time_text,
    }
    spec = source.spec
    body: bytes | None = None
    if spec.data_base64 is not None:
        body = base64.b64decode(spec.data_base64)
    elif spec.data is not None:
        body = spec.data.encode("utf-8")
    if body is not None and spec.content_type:
        attributes["datacontenttype"] = spec.content_type
    if spec.ce_overrides is not None:
        attributes.update(spec.ce_overrides.extensions)
    return CloudEvent.from_encoded(attributes, body)


class PingScheduler:
    """Sends a PingSource's event at each tick of its schedule, following ``clock``."""

    def __init__(
        self,
        source: PingSource,
        sink: EventSink,
        *,
        clock: Clock | None = None,
        retry_backoff_s: float = 0.1,
        max_retry_backoff_s: float = 5.0,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self.source = source
        self.sink = sink
        self.clock: Clock = clock or SystemClock()
        self.retry_backoff_s = retry_backoff_s
        self.max_retry_backoff_s = max_retry_backoff_s
        self.drain_timeout_s = drain_timeout_s
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()
        self._running = False
        self._drain = True
        self._tasks = BackgroundTasks()
        self._counters = dict.fromkeys(("ticks", "finished", "failed", "missed"), 0)
        self._last_tick: datetime | None = None

    async def run(self) -> None:
        """Fire at every tick until :meth:`stop`."""
        if self._running:
            raise RuntimeError("PingScheduler.run() is already running")
        self._running = True
        try:
            ticks = schedule_ticks(self.source, self.clock.now())
            tick = next(ticks)
            while not self._stopping.is_set():
                if not await self._sleep_until(tick):
                    break
                self._fire(tick)
                now = self.clock.now()
                tick = next(ticks)
                while tick <= now:  # the clock jumped: skip what was missed (as robfig/cron)
                    self._counters["missed"] += 1
                    tick = next(ticks)
            if self._drain:
                deadline = time.monotonic() + self.drain_timeout_s
                while self._tasks and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
        finally:
            await self._tasks.cancel_all()
            self._closed.set()

    async def stop(self, drain: bool = True) -> None:
        """Stop firing; with ``drain``, wait (up to ``drain_timeout_s``) for the ticks
        being delivered."""
        self._drain = drain
        self._stopping.set()
        if self._running:
            await self._closed.wait()

    def stats(self) -> dict[str, Any]:
        """Counters: ticks fired, finished, failed (attempts retried), missed (ticks skipped
        because the clock jumped past them), in_flight; ``last_tick`` (RFC 3339)."""
        stats: dict[str, Any] = {**self._counters, "in_flight": len(self._tasks)}
        if self._last_tick is not None:
            stats["last_tick"] = _rfc3339(self._last_tick)
        return stats

    async def _sleep_until(self, tick: datetime) -> bool:
        """False when stopped first."""
        sleeper = asyncio.ensure_future(self.clock.sleep_until(tick))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (sleeper, stopper):
                future.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await future
        return not self._stopping.is_set()

    def _fire(self, tick: datetime) -> None:
        self._counters["ticks"] += 1
        self._last_tick = tick
        self._tasks.spawn(self._deliver(ping_event(self.source, tick)))

    async def _deliver(self, event: CloudEvent) -> None:
        attempt = 0
        while True:
            try:
                outcomes = await self.sink.deliver([event])
                finished = len(outcomes) == 1 and outcomes[0].finished
            except Exception as error:
                log.warning("ping %s: sink failed (will retry): %r", event.get_id(), error)
                finished = False
            if finished:
                self._counters["finished"] += 1
                return
            self._counters["failed"] += 1
            await asyncio.sleep(min(self.retry_backoff_s * 2**attempt, self.max_retry_backoff_s))
            attempt += 1


def consumer(
    source: Resource, sink: EventSink, index: int, options: Mapping[str, Any]
) -> PingScheduler:
    """The registry's factory; ``options`` are PingScheduler's keywords (e.g. ``clock``)."""
    del index  # one scheduler per PingSource
    if not isinstance(source, PingSource):
        raise TypeError(f"expected a PingSource, got {source.KIND}")
    return PingScheduler(source, sink, **options)
