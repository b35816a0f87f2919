"""The broker: trigger fan-out and Knative delivery (retries, backoff, dead letters, replies).

Plain asyncio; the Ray actors that host it live in ``knray.runtime``.
"""

from knray.broker.outcome import (
    DeliveryStatus,
    EventSink,
    Outcome,
    Subscriber,
    SubscriberResponse,
)

__all__ = ["DeliveryStatus", "EventSink", "Outcome", "Subscriber", "SubscriberResponse"]
