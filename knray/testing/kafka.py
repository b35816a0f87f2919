"""Kafka for tests, demos and benchmarks: start a broker, create topics, produce events.

``start_kafka("apache")`` starts the reference, Apache Kafka 4 (``knray.testing.apache_kafka``;
needs Java 17+ and Maven the first time); ``start_kafka("tansu")`` the light embedded
Kafka-compatible broker that needs nothing else (``knray.testing.tansu``). Both return a
:class:`KafkaServer`: ``.bootstrap``, ``.pid``, ``.stop()`` and ``with`` support.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Literal, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from knray.events import CloudEvent
from knray.events.kafka import to_kafka_binary, to_kafka_structured
from knray.testing.apache_kafka import ApacheKafka, start_apache_kafka
from knray.testing.jvm import MissingToolError
from knray.testing.process import ServerStartError
from knray.testing.tansu import TansuBroker, TansuStartError, start_tansu

__all__ = [
    "KAFKA_KINDS",
    "ApacheKafka",
    "KafkaKind",
    "KafkaServer",
    "MissingToolError",
    "ServerStartError",
    "TansuBroker",
    "TansuStartError",
    "create_topics",
    "produce_events",
    "start_kafka",
    "start_tansu",
]

KafkaKind = Literal["apache", "tansu"]
# The brokers of the contract suite, the reference first.
KAFKA_KINDS: tuple[KafkaKind, ...] = ("apache", "tansu")


class KafkaServer(Protocol):
    """A running Kafka-protocol broker started by :func:`start_kafka`."""

    @property
    def kind(self) -> KafkaKind: ...

    @property
    def bootstrap(self) -> str: ...

    @property
    def pid(self) -> int: ...

    def log_tail(self) -> str: ...

    def stop(self, grace_s: float = ...) -> None: ...


def start_kafka(kind: KafkaKind = "apache") -> ApacheKafka | TansuBroker:
    """Start a broker on a free loopback port: ``"apache"`` (Apache Kafka, the reference) or
    ``"tansu"`` (embedded, no Java). Use it as a context manager or call ``stop()``.

    Raises MissingToolError when Java or Maven is missing (apache), ServerStartError (or its
    TansuStartError) with the broker's output when it cannot start, ValueError for another kind.
    """
    if kind == "apache":
        return start_apache_kafka()
    if kind == "tansu":
        return start_tansu()
    raise ValueError(f"unknown Kafka kind {kind!r}: expected one of {', '.join(KAFKA_KINDS)}")


async def create_topics(
    bootstrap: str, names: Iterable[str], *, partitions: int = 1, replication_factor: int = 1
) -> None:
    """Create topics on any Kafka-protocol broker; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        for name in names:  # one by one: an existing topic must not hide the others
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name, num_partitions=partitions, replication_factor=replication_factor
                        )
                    ]
                )
    finally:
        await admin.close()


async def produce_events(
    bootstrap: str,
    items: Iterable[tuple[str, CloudEvent]],
    *,
    rate_per_s: float | None = None,
    structured: bool = False,
) -> int:
    """Produce CloudEvents (binary mode, or structured) to their topics; returns the count.

    With ``rate_per_s``, sends are paced to that average rate. The producer waits for every
    acknowledgement (``acks=all``) before returning.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        pending = []
        for topic, event in items:
            record = to_kafka_structured(event) if structured else to_kafka_binary(event)
            value = record.value
            if value is None and record.key is None:
                # A Kafka record needs a key or a value; an event without data (and without a
                # partitionkey) goes as an empty value, which the binding reads back as no data.
                value = b""
            pending.append(
                await producer.send(
                    topic, value=value, key=record.key, headers=list(record.headers)
                )
            )
            sent += 1
            if rate_per_s:
                ahead_s = sent / rate_per_s - (time.monotonic() - started)
                if ahead_s > 0:
                    await asyncio.sleep(ahead_s)
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
