"""A Kafka-class Broker's topic: created when missing, appended to, and Trigger groups placed.

References: knative-extensions/eventing-kafka-broker (the receiver appends each event in binary
content mode and answers 202 once the record is acknowledged; the control plane creates the
topic from ``kafka-broker-config`` and initialises a new Trigger's consumer group at the end of
the topic before the Trigger is Ready, so a new Trigger sees events sent after it exists).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from knray.broker.ingress import DEFAULT_TTL, read_ttl, stamp_ingress
from knray.broker.kafka_class import KafkaBrokerConfig
from knray.broker.outcome import DeliveryStatus, Outcome
from knray.events import CloudEvent
from knray.events.kafka import KafkaRecord, to_kafka_binary, to_kafka_structured

__all__ = ["KafkaTopicWriter", "append_events", "ensure_topic", "start_group_at_end"]

_log = logging.getLogger(__name__)
_TIMEOUT_MS = 10_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def _admin_client(
    config: KafkaBrokerConfig, client_options: Mapping[str, Any] | None
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client of the Broker's cluster (``client_options``: security)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=list(config.bootstrap_servers),
        request_timeout_ms=_TIMEOUT_MS,
        **dict(client_options or {}),
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topic(
    config: KafkaBrokerConfig, client_options: Mapping[str, Any] | None = None
) -> None:
    """Create the Broker's topic unless it exists (an existing topic is kept as it is), with
    the topic configs of ``default.topic.config.*``. ``client_options`` (security) go to
    aiokafka's admin client."""
    topic = NewTopic(
        config.topic,
        config.partitions,
        config.replication_factor,
        topic_configs=dict(config.topic_configs) or None,
    )
    async with _admin_client(config, client_options) as admin:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([topic])


async def _topic_partitions(
    config: KafkaBrokerConfig,
    client_options: Mapping[str, Any] | None = None,
    timeout_s: float = 10.0,
) -> list[int]:
    """The partitions of the Broker's topic, asked of the cluster itself.

    A consumer's cached metadata does not learn of a topic created after it connected
    (``topics()`` fetches metadata without keeping it), and Apache Kafka may answer a
    describe with "unknown topic" for a moment after the topic was created: ask again.
    """
    async with _admin_client(config, client_options) as admin:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            (described,) = await admin.describe_topics([config.topic])
            partitions = sorted(p["partition"] for p in described["partitions"])
            if described["error_code"] == 0 and partitions:
                return partitions
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"topic {config.topic} has no partitions (Kafka error code "
                    f"{described['error_code']})"
                )
            await asyncio.sleep(0.1)


async def start_group_at_end(
    config: KafkaBrokerConfig, group: str, client_options: Mapping[str, Any] | None = None
) -> dict[int, int]:
    """Commit the end of every partition for ``group`` when it has no committed offset yet.

    Returns the offsets committed by this call (empty when the group had offsets already).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=list(config.bootstrap_servers),
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=_TIMEOUT_MS,
        **dict(client_options or {}),
    )
    try:
        await consumer.start()
        partitions = await _topic_partitions(config, client_options)
        tps = [TopicPartition(config.topic, p) for p in partitions]
        consumer.assign(tps)
        committed = [await consumer.committed(tp) for tp in tps]
        if any(offset is not None for offset in committed):
            return {}
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        await consumer.commit(ends)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


class KafkaTopicWriter:
    """Appends events to a Kafka-class Broker's topic; an EventSink.

    ``deliver`` stamps each event as the broker's ingress (unless ``stamped``), drops the ones
    whose TTL is exhausted, and returns DELIVERED for each event the topic acknowledged
    (``acks=all``), FAILED for the others (the sender retries). ``client_options`` (security)
    go to the admin client and the producer.
    """

    def __init__(
        self,
        config: KafkaBrokerConfig,
        *,
        default_ttl: int = DEFAULT_TTL,
        clock: Callable[[], datetime] = _utcnow,
        producer_options: dict[str, Any] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self._default_ttl = default_ttl
        self._clock = clock
        self._client_options = dict(client_options or {})
        self._options = {
            "bootstrap_servers": list(config.bootstrap_servers),
            "acks": "all",
            "enable_idempotence": False,
            "linger_ms": 1,
            **self._client_options,
            **(producer_options or {}),
        }
        self._producer: Any = None
        self._lock = asyncio.Lock()
        self._counts: Counter[str] = Counter()

    async def start(self) -> None:
        """Create the topic when missing and connect the producer."""
        async with self._lock:
            if self._producer is not None:
                return
            await ensure_topic(self.config, self._client_options)
            producer = AIOKafkaProducer(**self._options)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()  # a failed start leaves connections to close
                raise
            self._producer = producer

    async def close(self) -> None:
        """Flush and disconnect."""
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

    def stats(self) -> dict[str, int]:
        """Counters: appended, failed, ttl_dropped."""
        return {name: self._counts[name] for name in ("appended", "failed", "ttl_dropped")}

    async def deliver(
        self, events: Sequence[CloudEvent], *, stamped: bool = False
    ) -> list[Outcome]:
        if self._producer is None:
            await self.start()
        now = self._clock()
        outcomes: list[Outcome | None] = [None] * len(events)
        sends: list[tuple[int, Any]] = []
        for index, event in enumerate(events):
            ready = event if stamped else stamp_ingress(event, now, self._default_ttl)
            ttl = read_ttl(ready)
            if ttl is None or ttl <= 0:
                self._counts["ttl_dropped"] += 1
                outcomes[index] = Outcome(DeliveryStatus.DROPPED, "TTL exhausted")
                continue
            try:
                record = to_kafka_binary(ready)
            except ValueError as error:  # cannot become a record: retrying will not help
                _log.warning("event %s cannot be written to Kafka: %s", event.get("id"), error)
                outcomes[index] = Outcome(DeliveryStatus.DROPPED, f"not a Kafka record: {error}")
                continue
            try:
                future = await self._producer.send(
                    self.config.topic,
                    value=_value(record),
                    key=record.key,
                    headers=list(record.headers),
                )
            except Exception as error:
                outcomes[index] = Outcome(DeliveryStatus.FAILED, f"not appended: {error!r}")
                continue
            sends.append((index, future))
        results = await asyncio.gather(*(f for _, f in sends), return_exceptions=True)
        for (index, _), result in zip(sends, results, strict=True):
            if isinstance(result, BaseException):
                outcomes[index] = Outcome(DeliveryStatus.FAILED, f"not appended: {result!r}")
            else:
                outcomes[index] = Outcome(DeliveryStatus.DELIVERED)
        final = [o if o is not None else Outcome(DeliveryStatus.FAILED) for o in outcomes]
        appended = sum(1 for o in final if o.status is DeliveryStatus.DELIVERED)
        self._counts["appended"] += appended
        self._counts["failed"] += sum(1 for o in final if o.status is DeliveryStatus.FAILED)
        return final


def _value(record: KafkaRecord) -> bytes | None:
    # A record needs a key or a value: an event without data is an empty value, which the
    # binding reads back as no data.
    return record.value if record.value is not None or record.key else b""


async def append_events(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[CloudEvent],
    *,
    structured: bool = False,
    on_appended: Callable[[int], None] | None = None,
    window: int = 1000,
) -> list[tuple[int, str]]:
    """Append events to ``topic`` (binary content mode, or structured) with ``acks=all``.

    ``on_appended(n)`` is called as acknowledgements arrive. Returns ``(index, error)`` for
    every event that was not appended (nothing is dropped silently).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, request_timeout_ms=_TIMEOUT_MS
    )
    await producer.start()
    failures: list[tuple[int, str]] = []

    async def settle(pending: list[tuple[int, Any]]) -> None:
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        appended = 0
        for (index, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                failures.append((index, repr(result)))
            else:
                appended += 1
        if on_appended is not None and appended:
            on_appended(appended)
        pending.clear()

    try:
        pending: list[tuple[int, Any]] = []
        for index, event in enumerate(events):
            try:
                record = to_kafka_structured(event) if structured else to_kafka_binary(event)
                future = await producer.send(
                    topic, value=_value(record), key=record.key, headers=list(record.headers)
                )
            except Exception as error:
                failures.append((index, repr(error)))
                continue
            pending.append((index, future))
            if len(pending) >= window:
                await settle(pending)
        await settle(pending)
    finally:
        await producer.stop()
    return failures
