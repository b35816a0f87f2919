"""The Ray actors knray runs: a Broker's dispatchers and the consumers of each source.

Each actor hosts plain asyncio code from ``knray.broker`` and ``knray.sources``; this module
only places it in Ray.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from knray.broker import DeliveryStatus, EventSink, Outcome, Subscriber
from knray.broker.dispatcher import Dispatcher, Route
from knray.broker.outcome import PackedOutcomes, pack_outcomes
from knray.broker.retry import DeliveryPolicy
from knray.events import CloudEvent
from knray.events.packed import PackedEvents, unpack_events
from knray.filters import MatchAll
from knray.runtime.plan import BrokerPlan, ServicePlan, SourcePlan, TargetKind, TargetRef
from knray.runtime.targets import broker_pool, subscriber_for
from knray.sources.registry import create_consumer

__all__ = ["BrokerActor", "SourceActor"]

_log = logging.getLogger(__name__)


def _routes(plan: BrokerPlan, services: Mapping[str, ServicePlan], pool_size: int) -> list[Route]:
    # One subscriber per destination, shared by the Triggers sending there: a Service's
    # containerConcurrency budget is the Service's, not each Trigger's.
    subscribers: dict[TargetRef, Subscriber] = {}

    def shared(target: TargetRef) -> Subscriber:
        if target not in subscribers:
            subscribers[target] = subscriber_for(target, services, pool_size)
        return subscribers[target]

    routes = []
    for trigger in plan.triggers:
        subscriber = shared(trigger.subscriber)
        dead_letter = shared(trigger.dead_letter) if trigger.dead_letter is not None else None
        routes.append(
            Route.from_trigger(
                trigger.trigger,
                subscriber,
                broker_delivery=plan.broker.spec.delivery,
                dead_letter=dead_letter,
            )
        )
    return routes


class BrokerActor:
    """One dispatcher of a Broker: filters, fan-out and delivery for the batches it gets."""

    def __init__(
        self, plan: BrokerPlan, services: Mapping[str, ServicePlan], pool_size: int
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self._pool_size = pool_size
        self._dispatcher = Dispatcher(_routes(plan, services, pool_size), broker_name=plan.key)
        # Everything loaded so far (Ray, Serve, knray, the handler) lives as long as the
        # process: freezing it keeps the collector from walking it again in every full
        # collection, which stalled the data path for 100-300 ms (latency p99 319 -> 56 ms at
        # 500 events/s in bench/latency.py).
        gc.freeze()

    async def deliver(self, events: Sequence[CloudEvent], stamped: bool = False) -> list[Outcome]:
        return await self._dispatcher.deliver(events, stamped=stamped)

    async def deliver_packed(self, packed: PackedEvents, stamped: bool = False) -> PackedOutcomes:
        """``deliver`` in the wire form the pool uses (see knray.events.packed)."""
        events = unpack_events(packed)
        return pack_outcomes(await self._dispatcher.deliver(events, stamped=stamped))

    async def update(self, plan: BrokerPlan, services: Mapping[str, ServicePlan]) -> None:
        self._dispatcher.update_routes(_routes(plan, services, self._pool_size))

    async def stats(self) -> dict[str, Any]:
        return self._dispatcher.stats()

    async def recent(self, route_key: str | None = None, limit: int | None = None) -> list[Any]:
        return self._dispatcher.recent(route_key, limit)

    async def ready(self) -> bool:
        return True


class _DirectSink:
    """A source's sink when it is a Service or a URI: one match-all route with the source's
    delivery spec (Knative sources deliver straight to their sink with their own retries)."""

    def __init__(
        self, plan: SourcePlan, services: Mapping[str, ServicePlan], pool_size: int
    ) -> None:
        subscriber = subscriber_for(plan.sink, services, pool_size)
        dead_letter = (
            subscriber_for(plan.dead_letter, services, pool_size)
            if plan.dead_letter is not None
            else None
        )
        route = Route(
            key=f"{plan.key}->{plan.sink}",
            filter=MatchAll(),
            subscriber=subscriber,
            policy=DeliveryPolicy.from_spec(plan.delivery),
            dead_letter=dead_letter,
        )
        self.dispatcher = Dispatcher([route], broker_name=plan.key)

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        outcomes = await self.dispatcher.deliver(events)
        # Replies of a directly addressed sink go nowhere (Knative sources drop them); an
        # event with no matching route cannot happen with a match-all route.
        return [
            Outcome(DeliveryStatus.DELIVERED) if o.status is DeliveryStatus.FILTERED else o
            for o in outcomes
        ]


class SourceActor:
    """One consumer of a source of any kind (the runtime starts ``consumer_count`` of them:
    a KafkaSource's ``spec.consumers``, one for a PingSource, ...)."""

    def __init__(
        self,
        plan: SourcePlan,
        services: Mapping[str, ServicePlan],
        pool_size: int,
        index: int = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        sink: EventSink
        if plan.sink.kind is TargetKind.BROKER:
            sink = broker_pool(plan.sink.key, pool_size)
        else:
            sink = _DirectSink(plan, services, pool_size)
        self._consumer = create_consumer(plan.source, sink, index=index, options=options)
        self._task: asyncio.Task[None] | None = None
        gc.freeze()  # see BrokerActor

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._consumer.run())

    async def stop(self, drain: bool = True) -> dict[str, Any]:
        await self._consumer.stop(drain=drain)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except (TimeoutError, asyncio.CancelledError):
                _log.warning("consumer did not stop in time")
            except Exception:  # report, the stats say what was committed
                _log.exception("consumer ended with an error")
        return self._consumer.stats()

    async def stats(self) -> dict[str, Any]:
        stats = dict(self._consumer.stats())
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if error is not None:
                stats["error"] = repr(error)
        return stats

    async def ready(self) -> bool:
        return True
