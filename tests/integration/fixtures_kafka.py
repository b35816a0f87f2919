"""Kafka fixtures of the integration tests: Apache Kafka is the reference, Tansu a second target.

- ``kafka_bootstrap``: ``host:port`` of the reference broker for the whole session, Apache Kafka
  4 started from the cached Maven jars (``knray.testing.kafka.start_kafka("apache")``).
- ``kafka_contract_bootstrap``: the same, parametrized over every broker of the contract suite
  (Apache Kafka and Tansu), for tests of what knray expects of any Kafka-protocol broker. A
  module overrides ``kafka_bootstrap`` with it to run all its tests on both.
- ``kafka_topic``: ``await kafka_topic(partitions=3)`` creates a uniquely named topic on the
  test's broker.

``KNRAY_TEST_KAFKA=apache|tansu|host:port`` runs everything on that one broker instead (an
address is used as it is, nothing is started). A broker that cannot start fails the tests that
need it, with the reason (never a skip).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest

from knray.testing.apache_kafka import KAFKA_VERSION
from knray.testing.kafka import KAFKA_KINDS, KafkaServer, create_topics, start_kafka

__all__ = [
    "kafka_bootstrap",
    "kafka_brokers",
    "kafka_contract_bootstrap",
    "kafka_topic",
    "record_kafka_broker",
]

KAFKA_ENV = "KNRAY_TEST_KAFKA"
BROKER_NAMES = {"apache": f"Apache Kafka {KAFKA_VERSION}", "tansu": "Tansu"}

TopicFactory = Callable[..., Awaitable[str]]


def _selected() -> str | None:
    return os.environ.get(KAFKA_ENV, "").strip() or None


def contract_kinds() -> list[str]:
    """The brokers the contract tests run on: both kinds, or the one ``KNRAY_TEST_KAFKA``
    names."""
    selected = _selected()
    return [selected] if selected else list(KAFKA_KINDS)


class KafkaBrokers:
    """Starts each kind of broker on first use and keeps it for the session."""

    def __init__(self) -> None:
        self._started: dict[str, KafkaServer] = {}
        self._failed: dict[str, str] = {}

    def bootstrap(self, kind: str) -> str:
        if kind not in KAFKA_KINDS:
            return kind  # an address from KNRAY_TEST_KAFKA: a broker someone else runs
        if kind in self._failed:
            pytest.fail(self._failed[kind], pytrace=False)
        if kind not in self._started:
            try:
                self._started[kind] = start_kafka(kind)  # type: ignore[arg-type]
            except Exception as error:
                self._failed[kind] = f"cannot start the {kind} Kafka broker: {error}"
                pytest.fail(self._failed[kind], pytrace=False)
        return self._started[kind].bootstrap

    def stop_all(self) -> None:
        for server in self._started.values():
            server.stop()
        self._started.clear()


@pytest.fixture(scope="session")
def kafka_brokers() -> Iterator[KafkaBrokers]:
    brokers = KafkaBrokers()
    try:
        yield brokers
    finally:
        brokers.stop_all()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_brokers: KafkaBrokers) -> str:
    """``host:port`` of the reference broker (Apache Kafka unless ``KNRAY_TEST_KAFKA``)."""
    return kafka_brokers.bootstrap(_selected() or "apache")


@pytest.fixture(params=contract_kinds())
def kafka_contract_bootstrap(request: pytest.FixtureRequest, kafka_brokers: KafkaBrokers) -> str:
    """``host:port`` of each broker of the contract suite in turn."""
    return kafka_brokers.bootstrap(request.param)


@pytest.fixture(autouse=True)
def record_kafka_broker(request: pytest.FixtureRequest) -> None:
    """Note on the test's report which broker it ran on (summed up at the end of the run)."""
    names = request.fixturenames
    if "kafka_contract_bootstrap" in names:
        kind = request.node.callspec.params["kafka_contract_bootstrap"]
    elif "kafka_bootstrap" in names:
        kind = _selected() or "apache"
    else:
        return
    request.node.user_properties.append(("server", BROKER_NAMES.get(kind, f"Kafka at {kind}")))


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> TopicFactory:
    """A factory: ``await kafka_topic(partitions=3)`` creates a uniquely named topic."""

    async def make(partitions: int = 1, prefix: str = "knray-test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        await create_topics(kafka_bootstrap, [name], partitions=partitions)
        return name

    return make
