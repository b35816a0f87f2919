"""The Ray actors knray runs: a Broker's dispatchers and the consumers of each source.

Each actor hosts plain asyncio code from ``knray.broker`` and ``knray.sources``; this module
only places it in Ray.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from knray.broker import DeliveryStatus, EventSink, Outcome
from knray.broker.dispatcher import Dispatcher, Route
from knray.broker.retry import DeliveryPolicy
from knray.events import CloudEvent
from knray.filters import MatchAll
from knray.runtime.plan import BrokerPlan, ServicePlan, SourcePlan, TargetKind
from knray.runtime.targets import broker_pool, subscriber_for
from knray.sources.registry import create_consumer

__all__ = ["BrokerActor", "SourceActor"]

_log = logging.getLogger(__name__)


def _routes(plan: BrokerPlan, services: Mapping[str, ServicePlan], pool_size: int) -> list[Route]:
    routes = []
    for trigger in plan.triggers:
        subscriber = subscriber_for(trigger.subscriber, services, pool_size)
        dead_letter = (
            subscriber_for(trigger.dead_letter, services, pool_size)
            if trigger.dead_letter is not None
            else None
        )
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

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        return await self._dispatcher.deliver(events)

    async def update(self, plan: BrokerPlan, services: Mapping[str, ServicePlan]) -> None:
        self._dispatcher.update_routes(_routes(plan, services, self._pool_size))

    async def stats(self) -> dict[str, Any]:
        return self._dispatcher.stats()

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
