"""The broker's dispatch loop: filters, fan-out, batched delivery with retries, dead letters
and replies.

Knative references (knative/eventing unless noted):
- ingress: ``pkg/broker/ingress/ingress_handler.go`` and ``pkg/broker/ttl.go`` (see
  ``knray.broker.ingress``);
- per-trigger delivery: ``pkg/broker/filter/filter_handler.go`` (TTL removed before the
  subscriber, ``Prefer: reply``, the reply re-enters the broker with the same TTL) and
  ``pkg/kncloudevents/event_dispatcher.go`` ``send`` (retries, then the dead-letter sink with the
  same retry config and the error extensions; without one the delivery fails);
- retry rules: ``pkg/kncloudevents/retries.go`` (see ``knray.broker.retry``);
- knative/specs ``specs/eventing/data-plane.md``: a reply is a new event sent to the broker.

knray additions: one ``deliver`` call carries a batch; each route gets all of the batch's
matching events in one ``Subscriber.send`` call, and only the failed events are retried. An
event's Outcome is final only once the replies it caused are final too, so a source committing
offsets on Outcomes never loses a reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from knray.broker.dead_letter import with_error_extensions
from knray.broker.ingress import (
    ARRIVAL_TIME_EXTENSION,
    DEFAULT_TTL,
    TTL_EXTENSION,
    format_arrival_time,
    next_ttl,
    read_ttl,
)
from knray.broker.outcome import (
    DeliveryStatus,
    EventSink,
    Outcome,
    Subscriber,
    SubscriberResponse,
)
from knray.broker.retry import DeliveryPolicy, is_retryable
from knray.broker.stats import DispatchStats, RecentDeliveries
from knray.events import CloudEvent
from knray.filters import Filter, compile_trigger
from knray.manifests.delivery import DeliverySpec
from knray.manifests.trigger import DeliveryOrder, Trigger

__all__ = ["Dispatcher", "Route", "Sleep"]

_log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# Aggregation across routes: the worst status wins.
_SEVERITY: Final = {
    DeliveryStatus.DELIVERED: 0,
    DeliveryStatus.DEAD_LETTERED: 1,
    DeliveryStatus.DROPPED: 2,
    DeliveryStatus.FAILED: 3,
}


@dataclass(frozen=True, slots=True)
class Route:
    """One Trigger of a Broker, compiled: who gets which events, and how.

    ``key`` names the route in stats and logs (a Trigger's ``Trigger/namespace/name``).
    ``dead_letter`` receives events whose retries are exhausted; ``ordered`` delivers one event
    at a time, in order (Knative Kafka's ``delivery.order: ordered``).
    """

    key: str
    filter: Filter
    subscriber: Subscriber
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    dead_letter: Subscriber | None = None
    ordered: bool = False

    @property
    def name(self) -> str:
        """The last segment of ``key`` (the Trigger's name)."""
        return self.key.rsplit("/", 1)[-1]

    @classmethod
    def from_trigger(
        cls,
        trigger: Trigger,
        subscriber: Subscriber,
        *,
        broker_delivery: DeliverySpec | None = None,
        dead_letter: Subscriber | None = None,
    ) -> Route:
        """The route of a Trigger: compiled filter, delivery resolved against its Broker's."""
        return cls(
            key=trigger.key,
            filter=compile_trigger(trigger),
            subscriber=subscriber,
            policy=DeliveryPolicy.resolve(broker_delivery, trigger.spec.delivery),
            dead_letter=dead_letter,
            ordered=trigger.delivery_order is DeliveryOrder.ORDERED,
        )


@dataclass(frozen=True, slots=True)
class _Result:
    """What happened to one event at one route."""

    status: DeliveryStatus
    error: str | None = None
    reply: CloudEvent | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _describe(response: SubscriberResponse) -> str:
    if response.code is None:
        return f"no response ({response.error or 'unknown error'})"
    if response.error:
        return f"HTTP {response.code}: {response.error}"
    return f"HTTP {response.code}"


class Dispatcher:
    """A Broker's data plane: ``deliver(events) -> list[Outcome]`` (an ``EventSink``).

    ``sleep`` waits between retries and ``clock`` stamps ``knativearrivaltime``; inject fakes
    in tests. ``default_ttl`` is the ``knativebrokerttl`` given to events that carry none.
    ``reply_sink``: where replies go instead of re-entering this dispatcher (a Kafka-class
    Broker's replies go back to its topic, so every Trigger sees them); a reply it does not
    finish leaves its cause unfinished.
    ``recent_limit`` is how many final results each route keeps for :meth:`recent`.
    """

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        broker_name: str,
        default_ttl: int = DEFAULT_TTL,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], datetime] = _utcnow,
        reply_sink: EventSink | None = None,
        recent_limit: int = 100,
    ) -> None:
        if default_ttl <= 0:
            raise ValueError(f"default_ttl must be positive, got {default_ttl}")
        self.broker_name = broker_name
        self._default_ttl = default_ttl
        self._sleep = sleep
        self._clock = clock
        self._reply_sink = reply_sink
        self._stats = DispatchStats()
        self._recent = RecentDeliveries(recent_limit)
        self._routes: tuple[Route, ...] = ()
        self.update_routes(routes)

    @property
    def routes(self) -> tuple[Route, ...]:
        """The current routes."""
        return self._routes

    def update_routes(self, routes: Iterable[Route]) -> None:
        """Replace the routes (manifests changed). Deliveries in flight finish on the old ones."""
        new = tuple(routes)
        keys = [route.key for route in new]
        if len(set(keys)) != len(keys):
            duplicates = sorted({key for key in keys if keys.count(key) > 1})
            raise ValueError(f"duplicate route keys: {', '.join(duplicates)}")
        self._routes = new
        self._stats.track(keys)
        self._recent.track(keys)

    def stats(self) -> dict[str, Any]:
        """``{"broker", "routes": {key: counters}, "totals": counters}`` as plain dicts."""
        return {"broker": self.broker_name, **self._stats.snapshot()}

    def recent(
        self, route_key: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The latest final results (delivered, dead-lettered, ...) of one route or of all, as
        plain dicts: time_s, trigger, id, type, source, subject, status, error, reply_type,
        data; oldest first."""
        return self._recent.rows(route_key, limit)

    async def deliver(
        self, events: Sequence[CloudEvent], *, stamped: bool = False
    ) -> list[Outcome]:
        """Dispatch a batch entering the broker; one Outcome per event, in order.

        ``stamped``: the events were stamped by the broker's ingress already (arrival time
        set, TTL decremented and checked), so they are not stamped again.
        """
        self._stats.add("received", len(events))
        self._stats.add("batches")
        outcomes: list[Outcome | None] = [None] * len(events)
        now = self._clock()
        # (the event it came from, the subscribers' view of it, its TTL in the broker)
        wave: list[tuple[int, CloudEvent, int]] = []
        for index, event in enumerate(events):
            if stamped:
                # Stamped by the HTTP ingress already: arrival time set, TTL decremented.
                ttl = read_ttl(event)
                view = event.evolve({TTL_EXTENSION: None})
                wave.append((index, view, self._default_ttl if ttl is None else ttl))
                continue
            admitted = self._ingress(event, read_ttl(event), now, reply=False)
            if admitted is None:
                outcomes[index] = Outcome(DeliveryStatus.DROPPED, "TTL exhausted")
            else:
                wave.append((index, *admitted))

        own: dict[int, list[tuple[Route, _Result]]] = {}
        reply_errors: dict[int, list[str]] = {}
        outside: list[tuple[int, CloudEvent]] = []
        first = True
        while wave:
            per_event = await self._dispatch([event for _, event, _ in wave])
            next_wave: list[tuple[int, CloudEvent, int]] = []
            now = self._clock()
            for (root, event, ttl), results in zip(wave, per_event, strict=True):
                if first:
                    own[root] = results
                else:
                    reply_errors.setdefault(root, []).extend(
                        f"reply {event.get('id')!s} at {route.key}: {result.error}"
                        for route, result in results
                        if result.status is DeliveryStatus.FAILED
                    )
                for _, result in results:
                    if result.reply is not None:
                        # filter_handler.go: the reply carries the TTL the event had.
                        if self._reply_sink is not None:
                            outside.append((root, result.reply.evolve({TTL_EXTENSION: ttl})))
                            continue
                        admitted = self._ingress(result.reply, ttl, now, reply=True)
                        if admitted is not None:
                            next_wave.append((root, *admitted))
            wave = next_wave
            first = False
        if outside:
            await self._send_replies(outside, reply_errors)

        for root, results in own.items():
            outcomes[root] = self._aggregate(results, reply_errors.get(root, []))
        return [outcome for outcome in outcomes if outcome is not None]

    async def _send_replies(
        self, replies: list[tuple[int, CloudEvent]], reply_errors: dict[int, list[str]]
    ) -> None:
        assert self._reply_sink is not None
        self._stats.add("reply_events", len(replies))
        try:
            outcomes = await self._reply_sink.deliver([reply for _, reply in replies])
        except Exception as error:
            _log.warning("broker %s: replies not accepted: %r", self.broker_name, error)
            outcomes = [Outcome(DeliveryStatus.FAILED, repr(error))] * len(replies)
        if len(outcomes) != len(replies):
            miscount = f"reply sink returned {len(outcomes)} outcomes for {len(replies)} replies"
            outcomes = [Outcome(DeliveryStatus.FAILED, miscount)] * len(replies)
        for (root, reply), outcome in zip(replies, outcomes, strict=True):
            if not outcome.finished:
                reply_errors.setdefault(root, []).append(
                    f"reply {reply.get('id')!s}: {outcome.error or 'not accepted'}"
                )

    # --- ingress -------------------------------------------------------------------------
    def _ingress(
        self, event: CloudEvent, ttl: int | None, now: datetime, *, reply: bool
    ) -> tuple[CloudEvent, int] | None:
        """The subscribers' view of an event entering the broker with ``ttl``, and its TTL
        inside; None when the TTL is exhausted. The TTL travels beside the view rather than
        in it: one derived copy per event, not one to stamp it and one to strip it."""
        if reply:
            self._stats.add("reply_events")
        ttl = next_ttl(ttl, self._default_ttl)
        if ttl <= 0:
            # ingress_handler.go: "dropping event based on TTL status".
            self._stats.add("ttl_dropped")
            _log.warning(
                "broker %s: dropping %s %s (type %s, source %s): %s exhausted",
                self.broker_name,
                "reply" if reply else "event",
                event.get("id"),
                event.get("type"),
                event.get("source"),
                TTL_EXTENSION,
            )
            return None
        # filter_handler.go: the broker's TTL is removed before the subscriber sees the event.
        view = event.evolve({ARRIVAL_TIME_EXTENSION: format_arrival_time(now), TTL_EXTENSION: None})
        return view, ttl

    # --- fan-out -------------------------------------------------------------------------
    async def _dispatch(self, events: list[CloudEvent]) -> list[list[tuple[Route, _Result]]]:
        per_event: list[list[tuple[Route, _Result]]] = [[] for _ in events]
        work: list[tuple[Route, list[int]]] = []
        for route in self._routes:
            matched = [i for i, event in enumerate(events) if self._matches(route, event)]
            if matched:
                self._stats.add_route(route.key, "matched", len(matched))
                work.append((route, matched))
        if work:
            delivered = await asyncio.gather(
                *(self._deliver_route(route, [events[i] for i in idx]) for route, idx in work)
            )
            for (route, matched), results in zip(work, delivered, strict=True):
                for i, result in zip(matched, results, strict=True):
                    per_event[i].append((route, result))
        self._stats.add("filtered", sum(1 for results in per_event if not results))
        return per_event

    @staticmethod
    def _matches(route: Route, event: CloudEvent) -> bool:
        try:
            return route.filter.match(event)
        except Exception:  # filters fail closed
            _log.exception("route %s: filter error on event %s", route.key, event.get("id"))
            return False

    async def _deliver_route(self, route: Route, events: list[CloudEvent]) -> list[_Result]:
        if not route.ordered:
            return await self._deliver_batch(route, events)
        results: list[_Result] = []
        for event in events:
            results.extend(await self._deliver_batch(route, [event]))
        return results

    async def _deliver_batch(self, route: Route, events: list[CloudEvent]) -> list[_Result]:
        def count_retries(n: int) -> None:
            self._stats.add_route(route.key, "retries", n)

        responses = await self._send_with_retries(
            route.subscriber, events, route.policy, count_retries
        )
        results: list[_Result | None] = [None] * len(events)
        failed: list[int] = []
        replies = 0
        for position, response in enumerate(responses):
            if response.ok:
                if response.reply is not None:
                    replies += 1
                results[position] = _Result(DeliveryStatus.DELIVERED, reply=response.reply)
            else:
                failed.append(position)
        self._stats.add_route(route.key, "delivered", len(events) - len(failed))
        if replies:
            self._stats.add_route(route.key, "replies", replies)
        if failed:
            for position, result in zip(
                failed, await self._dead_letter(route, events, responses, failed), strict=True
            ):
                results[position] = result
        final = [result for result in results if result is not None]
        self._recent.add(
            route.key,
            time.time(),
            events,
            [(result.status, result.error, result.reply) for result in final],
        )
        return final

    async def _dead_letter(
        self,
        route: Route,
        events: list[CloudEvent],
        responses: list[SubscriberResponse],
        failed: list[int],
    ) -> list[_Result]:
        destination = route.subscriber.address
        if route.dead_letter is None:
            results = []
            for position in failed:
                error = f"{destination}: {_describe(responses[position])}"
                self._stats.add_route(route.key, "dropped")
                _log.warning(
                    "route %s: dropping event %s (no dead-letter sink): %s",
                    route.key,
                    events[position].get("id"),
                    error,
                )
                results.append(_Result(DeliveryStatus.DROPPED, error))
            return results
        # event_dispatcher.go: the original event, with the error extensions, to the DLS
        # under the same retry config.
        letters = [
            with_error_extensions(events[position], destination, responses[position])
            for position in failed
        ]
        answers = await self._send_with_retries(route.dead_letter, letters, route.policy, None)
        results = []
        for position, answer in zip(failed, answers, strict=True):
            error = f"{destination}: {_describe(responses[position])}"
            if answer.ok:
                self._stats.add_route(route.key, "dead_lettered")
                results.append(_Result(DeliveryStatus.DEAD_LETTERED, error))
            else:
                sink = route.dead_letter.address
                error = f"{error}; dead-letter sink {sink}: {_describe(answer)}"
                self._stats.add_route(route.key, "failed")
                _log.error(
                    "route %s: event %s failed, dead-letter sink failed too: %s",
                    route.key,
                    events[position].get("id"),
                    error,
                )
                results.append(_Result(DeliveryStatus.FAILED, error))
        return results

    # --- retries -------------------------------------------------------------------------
    async def _send_with_retries(
        self,
        subscriber: Subscriber,
        events: list[CloudEvent],
        policy: DeliveryPolicy,
        on_retry: Callable[[int], None] | None,
    ) -> list[SubscriberResponse]:
        """Final response per event: failed events alone are retried, each after its delay."""
        final: list[SubscriberResponse] = [SubscriberResponse(code=None)] * len(events)

        async def attempt(positions: list[int], retry: int) -> None:
            responses = await self._call(
                subscriber, [events[p] for p in positions], policy.timeout_s
            )
            due: dict[float, list[int]] = {}
            for position, response in zip(positions, responses, strict=True):
                final[position] = response
                if not response.ok and retry < policy.retry and is_retryable(response.code):
                    delay = policy.delay_before_retry_s(
                        retry + 1, response.code, response.retry_after_s
                    )
                    due.setdefault(delay, []).append(position)
            if not due:
                return
            if on_retry is not None:
                on_retry(sum(len(group) for group in due.values()))
            await asyncio.gather(*(later(delay, group, retry + 1) for delay, group in due.items()))

        async def later(delay: float, positions: list[int], retry: int) -> None:
            _log.debug(
                "retry %d of %d events to %s in %.3fs",
                retry,
                len(positions),
                subscriber.address,
                delay,
            )
            await self._sleep(delay)
            await attempt(positions, retry)

        if events:
            await attempt(list(range(len(events))), 0)
        return final

    @staticmethod
    async def _call(
        subscriber: Subscriber, events: list[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        """One attempt; a raising, hanging or miscounting subscriber means no response."""
        try:
            if timeout_s is None:
                responses = await subscriber.send(events, None)
            else:
                # A subscriber ignoring its per-event timeout is cut off after (n + 1) timeouts.
                backstop = timeout_s * (len(events) + 1)
                responses = await asyncio.wait_for(subscriber.send(events, timeout_s), backstop)
        except TimeoutError:
            error = f"no response within {timeout_s}s per event"
            return [SubscriberResponse(code=None, error=error)] * len(events)
        except Exception as exc:
            _log.exception("subscriber %s raised", subscriber.address)
            error = f"{type(exc).__name__}: {exc}"
            return [SubscriberResponse(code=None, error=error)] * len(events)
        if len(responses) != len(events):
            error = f"subscriber returned {len(responses)} responses for {len(events)} events"
            _log.error("%s: %s", subscriber.address, error)
            return [SubscriberResponse(code=None, error=error)] * len(events)
        return list(responses)

    # --- outcomes ------------------------------------------------------------------------
    def _aggregate(self, results: list[tuple[Route, _Result]], reply_errors: list[str]) -> Outcome:
        if not results:
            return Outcome(DeliveryStatus.FILTERED)
        status = max((result.status for _, result in results), key=_SEVERITY.__getitem__)
        errors = [f"{route.key}: {result.error}" for route, result in results if result.error]
        if reply_errors:
            # A reply that is not finished keeps its cause unfinished: the source retries it.
            status = DeliveryStatus.FAILED
            errors.extend(reply_errors)
        return Outcome(status, "; ".join(errors) if errors else None)
