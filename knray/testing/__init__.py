"""Test kit: an in-memory broker for handler tests (no Ray, no Kafka), and real
infrastructure for integration tests (a local Kafka-protocol broker).

``import knray.testing`` stays light: the Kafka kit (aiokafka) loads on first use of its names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knray.testing.memory import (
    Attempt,
    HandlerSubscriber,
    InMemoryBroker,
    RecordingSink,
    make_event,
)

if TYPE_CHECKING:
    from knray.testing.kafka import (
        TansuBroker,
        TansuStartError,
        create_topics,
        produce_events,
        start_tansu,
    )

__all__ = [
    "Attempt",
    "HandlerSubscriber",
    "InMemoryBroker",
    "RecordingSink",
    "TansuBroker",
    "TansuStartError",
    "create_topics",
    "make_event",
    "produce_events",
    "start_tansu",
]

_KAFKA_KIT = frozenset(
    {"TansuBroker", "TansuStartError", "create_topics", "produce_events", "start_tansu"}
)


def __getattr__(name: str) -> Any:
    if name in _KAFKA_KIT:
        from knray.testing import kafka  # noqa: PLC0415 - aiokafka only when asked for

        return getattr(kafka, name)
    raise AttributeError(f"module 'knray.testing' has no attribute {name!r}")
