"""Kafka-protocol broker fixtures for the integration tests.

``kafka_bootstrap`` is ``KNRAY_TEST_KAFKA_BOOTSTRAP`` (``host:port`` of a running broker) when
set, else a Tansu broker started for the session. ``kafka_topic`` creates unique topics.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest

from knray.testing.kafka import create_topics, start_tansu

__all__ = ["kafka_bootstrap", "kafka_topic"]

BOOTSTRAP_ENV = "KNRAY_TEST_KAFKA_BOOTSTRAP"

TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a Kafka-protocol broker for the whole session."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    broker = start_tansu()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> TopicFactory:
    """A factory: ``await kafka_topic(partitions=3)`` creates a uniquely named topic."""

    async def make(partitions: int = 1, prefix: str = "knray-test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        await create_topics(kafka_bootstrap, [name], partitions=partitions)
        return name

    return make
