"""Test kit: an in-memory broker for handler tests (no Ray, no Kafka), and real
infrastructure for integration tests: Apache Kafka 4 or Tansu (``start_kafka``) and Apache
RocketMQ 5 (``start_rocketmq``), started on loopback ports.

``import knray.testing`` stays light: the server kits load on first use of their names.
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
        ApacheKafka,
        KafkaServer,
        MissingToolError,
        ServerStartError,
        TansuBroker,
        TansuStartError,
        create_topics,
        produce_events,
        start_kafka,
        start_tansu,
    )
    from knray.testing.rocketmq import RocketMQServer, start_rocketmq

__all__ = [
    "ApacheKafka",
    "Attempt",
    "HandlerSubscriber",
    "InMemoryBroker",
    "KafkaServer",
    "MissingToolError",
    "RecordingSink",
    "RocketMQServer",
    "ServerStartError",
    "TansuBroker",
    "TansuStartError",
    "create_topics",
    "make_event",
    "produce_events",
    "start_kafka",
    "start_rocketmq",
    "start_tansu",
]

_KAFKA_KIT = frozenset(
    {
        "ApacheKafka",
        "KafkaServer",
        "MissingToolError",
        "ServerStartError",
        "TansuBroker",
        "TansuStartError",
        "create_topics",
        "produce_events",
        "start_kafka",
        "start_tansu",
    }
)


_ROCKETMQ_KIT = frozenset({"RocketMQServer", "start_rocketmq"})


def __getattr__(name: str) -> Any:
    if name in _KAFKA_KIT:
        from knray.testing import kafka  # noqa: PLC0415 - aiokafka only when asked for

        return getattr(kafka, name)
    if name in _ROCKETMQ_KIT:
        from knray.testing import rocketmq  # noqa: PLC0415 - only when asked for

        return getattr(rocketmq, name)
    raise AttributeError(f"module 'knray.testing' has no attribute {name!r}")
