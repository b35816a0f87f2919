"""Subscribers for resolved destinations, built inside the actor that uses them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray

from knray.broker import Subscriber
from knray.broker.http_subscriber import HttpSubscriber
from knray.runtime.names import RAY_NAMESPACE, broker_actor_name
from knray.runtime.plan import ServicePlan, TargetKind, TargetRef
from knray.runtime.pool import BrokerSubscriber, DispatcherPool
from knray.serving import ServeSubscriber

__all__ = ["broker_pool", "subscriber_for"]


def broker_pool(broker_key: str, size: int, *, stamped: bool = False) -> DispatcherPool:
    """The EventSink of a running Broker: its named dispatcher actors (``stamped``: events
    stamped by the broker's ingress already)."""

    def resolve() -> list[Any]:
        return [
            ray.get_actor(broker_actor_name(broker_key, i), namespace=RAY_NAMESPACE)
            for i in range(size)
        ]

    return DispatcherPool(resolve, stamped=stamped)


def subscriber_for(
    target: TargetRef, services: Mapping[str, ServicePlan], pool_size: int
) -> Subscriber:
    """A Serve, HTTP or Broker subscriber for ``target``."""
    if target.kind is TargetKind.URI:
        return HttpSubscriber(target.uri)
    if target.kind is TargetKind.SERVICE:
        # Each of the broker's dispatcher actors sends to the Service: split its
        # containerConcurrency budget between them.
        planned = services[target.key]
        return ServeSubscriber.for_service(
            planned.service, senders=pool_size, application=planned.application or None
        )
    return BrokerSubscriber(target.key, broker_pool(target.key, pool_size))
