"""EventSinks over Ray actors: a Broker's pool of dispatcher actors, seen as one sink."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from knray.broker import DeliveryStatus, EventSink, Outcome, SubscriberResponse
from knray.broker.outcome import unpack_outcomes
from knray.events import CloudEvent
from knray.events.packed import pack_events

__all__ = ["BrokerSubscriber", "DispatcherPool"]


class DispatcherPool:
    """Spreads batches over a Broker's dispatcher actors (round robin); an EventSink.

    ``resolve`` returns the actor handles; it is called on first use, so pools can refer to
    Brokers created later (a Trigger may subscribe a Broker defined after it). ``stamped``:
    the events were stamped by the broker's HTTP ingress already.
    """

    def __init__(self, resolve: Callable[[], Sequence[Any]], *, stamped: bool = False) -> None:
        self._resolve = resolve
        self._stamped = stamped
        self._handles: list[Any] = []
        self._next = itertools.count()

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        if not self._handles:
            self._handles = list(self._resolve())
            if not self._handles:
                raise ValueError("a dispatcher pool needs at least one actor")
        handle = self._handles[next(self._next) % len(self._handles)]
        try:
            packed = await handle.deliver_packed.remote(pack_events(events), self._stamped)
        except Exception as error:  # an actor died: the events are not finished
            self._handles = []  # look the actors up again: a replacement may have their name
            return [Outcome(DeliveryStatus.FAILED, f"dispatcher failed: {error}")] * len(events)
        return unpack_outcomes(packed)


class BrokerSubscriber:
    """A Trigger or source whose subscriber is another Broker: deliver into its pool.

    Finished outcomes answer 202 (Knative's broker ingress accepts the event); unfinished ones
    answer 503 so the sender retries.
    """

    def __init__(self, broker_key: str, sink: EventSink) -> None:
        self._broker_key = broker_key
        self._sink = sink

    @property
    def address(self) -> str:
        return f"broker/{self._broker_key}"

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        outcomes = await self._sink.deliver(events)
        return [
            SubscriberResponse(202)
            if outcome.finished
            else SubscriberResponse(503, error=outcome.error)
            for outcome in outcomes
        ]
