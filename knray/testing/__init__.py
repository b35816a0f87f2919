"""Test kit: real infrastructure for tests (a local Kafka-protocol broker)."""

from knray.testing.kafka import (
    TansuBroker,
    TansuStartError,
    create_topics,
    produce_events,
    start_tansu,
)

__all__ = [
    "TansuBroker",
    "TansuStartError",
    "create_topics",
    "produce_events",
    "start_tansu",
]
