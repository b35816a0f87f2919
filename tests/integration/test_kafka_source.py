"""KafkaConsumer against real Kafka-protocol brokers: the contract suite, run on Apache Kafka
and on Tansu (``KNRAY_TEST_KAFKA`` picks one)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from knray.broker.outcome import DeliveryStatus, Outcome
from knray.events import CloudEvent
from knray.events.kafka import to_kafka_binary
from knray.manifests.kafka_source import KafkaSource
from knray.sources import KafkaConsumer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def kafka_bootstrap(kafka_contract_bootstrap: str) -> str:
    """Every test of this module runs on each broker of the contract suite."""
    return kafka_contract_bootstrap


TopicFactory = Callable[..., Awaitable[str]]
DELIVERED = Outcome(DeliveryStatus.DELIVERED)
FAILED = Outcome(DeliveryStatus.FAILED, error="try again")
# Fast group membership in tests: a member that vanishes is noticed within seconds. (Tansu
# numbers a group's first generation 0, and aiokafka then skips LeaveGroup on stop, so the
# next member waits for the session timeout; on real Kafka the member leaves at once.)
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


class RecordingSink:
    """Records every event it accepts; optional delay, failures and in-flight tracking."""

    def __init__(
        self,
        delay: Callable[[], float] | None = None,
        fail: Callable[[CloudEvent], bool] | None = None,
        gate: asyncio.Event | None = None,
        gate_after: int = 0,
    ) -> None:
        self.events: list[CloudEvent] = []
        # Once ``gate_after`` events are recorded, deliveries wait until ``gate`` is set: the
        # stream is held mid-way, whatever the speed of the machine.
        self.gate = gate
        self.gate_after = gate_after
        self.calls: list[int] = []
        self.delay = delay
        self.fail = fail
        self.in_flight = 0
        self.max_in_flight = 0

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        self.calls.append(len(events))
        self.in_flight += len(events)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None and len(self.events) >= self.gate_after:
                await self.gate.wait()
            if self.delay is not None:
                await asyncio.sleep(self.delay())
            outcomes = []
            for event in events:
                if self.fail is not None and self.fail(event):
                    outcomes.append(FAILED)
                else:
                    self.events.append(event)
                    outcomes.append(DELIVERED)
            return outcomes
        finally:
            self.in_flight -= len(events)

    def data(self) -> list[str]:
        return [event.encoded_data().decode() for event in self.events]


def make_source(
    bootstrap: str,
    topics: list[str],
    *,
    ordering: str = "unordered",
    group: str | None = None,
    name: str = "orders",
    extensions: dict[str, str] | None = None,
    initial_offset: str = "earliest",
) -> KafkaSource:
    spec: dict[str, Any] = {
        "bootstrapServers": [bootstrap],
        "topics": topics,
        "consumerGroup": group or f"group-{uuid.uuid4().hex[:8]}",
        "initialOffset": initial_offset,
        "ordering": ordering,
        "sink": {"uri": "http://sink.example/"},
    }
    if extensions:
        spec["ceOverrides"] = {"extensions": extensions}
    return KafkaSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1beta1",
            "kind": "KafkaSource",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": spec,
        }
    )


async def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[str],
    *,
    partition: int | None = None,
    key: Callable[[int], bytes | None] | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    compression: str | None = None,
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, compression_type=compression
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value.encode(),
                key=key(i) if key else None,
                partition=partition,
                headers=headers,
            )
            for i, value in enumerate(values)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _has(sink: RecordingSink, count: int) -> bool:
    return len(sink.events) >= count


def start(consumer: KafkaConsumer) -> asyncio.Task[None]:
    return asyncio.create_task(consumer.run())


async def test_events_reach_the_sink_with_knative_attributes(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=1)
    await produce(
        kafka_bootstrap,
        topic,
        ["hello", "world"],
        key=lambda i: f"k{i}".encode(),
        headers=[("Content-Type", b"Text/Plain"), ("X-Trace", b"abc")],
    )
    passthrough = CloudEvent(
        {"specversion": "1.0", "id": "ce-1", "source": "/producer", "type": "order.created"},
        {"n": 1},
    )
    record = to_kafka_binary(passthrough)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, record.value, key=record.key, headers=list(record.headers)
        )
    finally:
        await producer.stop()

    sink = RecordingSink()
    source = make_source(kafka_bootstrap, [topic], extensions={"team": "blue"})
    consumer = KafkaConsumer(source, sink)
    task = start(consumer)
    await wait_until(lambda: len(sink.events) == 3, 30, "3 events")
    await consumer.stop()
    await task

    first, second, third = sink.events
    attributes = first.get_attributes()
    time_attribute = attributes.pop("time")
    assert attributes == {
        "specversion": "1.0",
        "id": "partition:0/offset:0",
        "source": f"/apis/v1/namespaces/shop/kafkasources/orders#{topic}",
        "type": "dev.knative.kafka.event",
        "subject": "partition:0#0",
        "key": "k0",
        "partitionkey": "k0",
        "kafkaheaderxtrace": "abc",
        "datacontenttype": "text/plain",
        "team": "blue",
    }
    assert time_attribute.endswith("Z")
    assert first.get_time() is not None
    assert first.get_data() == "hello"
    assert second["id"] == "partition:0/offset:1"
    assert third.get_attributes() == {**passthrough.get_attributes(), "team": "blue"}
    assert third.get_data() == {"n": 1}
    stats = consumer.stats()
    assert stats["consumed"] == stats["finished"] == 3
    assert stats["committed"] == {f"{topic}/0": 3}


async def test_ordered_mode_keeps_partition_order(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=3)
    per_partition = 40
    for partition in range(3):
        values = [f"{partition}:{i}" for i in range(per_partition)]
        await produce(kafka_bootstrap, topic, values, partition=partition)
    rng = random.Random(7)
    sink = RecordingSink(delay=lambda: rng.uniform(0, 0.004))
    consumer = KafkaConsumer(make_source(kafka_bootstrap, [topic], ordering="ordered"), sink)
    task = start(consumer)
    await wait_until(lambda: len(sink.events) == 3 * per_partition, 60, "all events")
    await consumer.stop()
    await task

    assert set(sink.calls) == {1}  # one event at a time
    seen: dict[str, list[int]] = defaultdict(list)
    for value in sink.data():
        partition_name, index = value.split(":")
        seen[partition_name].append(int(index))
    assert seen == {str(p): list(range(per_partition)) for p in range(3)}
    # Partitions run in parallel: at some point more than one event was in the sink.
    assert sink.max_in_flight > 1


async def test_unordered_mode_batches_and_bounds_in_flight(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=2)
    count = 2000
    await produce(kafka_bootstrap, topic, [str(i) for i in range(count)])
    sink = RecordingSink(delay=lambda: 0.01)
    consumer = KafkaConsumer(
        make_source(kafka_bootstrap, [topic]), sink, batch_size=50, max_in_flight=150
    )
    task = start(consumer)
    await wait_until(lambda: len(sink.events) == count, 60, "all events")
    await consumer.stop()
    await task

    assert sorted(int(v) for v in sink.data()) == list(range(count))
    assert max(sink.calls) <= 50
    assert len(sink.calls) < count / 10  # batched, not one call per event
    assert sink.max_in_flight <= 150


async def test_failed_outcomes_are_retried_not_skipped(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=2)
    count = 300
    await produce(kafka_bootstrap, topic, [str(i) for i in range(count)])
    failures: Counter[str] = Counter()

    def fail(event: CloudEvent) -> bool:
        # Every 7th event fails twice, then succeeds.
        value = event.encoded_data().decode()
        if int(value) % 7 == 0 and failures[value] < 2:
            failures[value] += 1
            return True
        return False

    for ordering in ("unordered", "ordered"):
        sink = RecordingSink(fail=fail)
        failures.clear()
        source = make_source(kafka_bootstrap, [topic], ordering=ordering)
        consumer = KafkaConsumer(source, sink, batch_size=40, retry_backoff_s=0.01)
        task = start(consumer)
        await wait_until(partial(_has, sink, count), 60, f"all events ({ordering})")
        await consumer.stop()
        await task
        assert sorted(int(v) for v in sink.data()) == list(range(count)), ordering
        assert consumer.stats()["failed"] == 2 * len(failures)
        assert sum(consumer.stats()["committed"].values()) == count


async def test_commit_on_stop_then_a_new_member_gets_nothing_old(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=2)
    await produce(kafka_bootstrap, topic, [f"old-{i}" for i in range(100)])
    source = make_source(kafka_bootstrap, [topic])
    first = RecordingSink()
    # Only the stop commits.
    consumer = KafkaConsumer(source, first, commit_interval_s=3600, consumer_options=FAST_GROUP)
    task = start(consumer)
    await wait_until(lambda: len(first.events) == 100, 30, "old events")
    await consumer.stop()
    await task
    assert consumer.stats()["commits"] >= 1

    second = RecordingSink()
    consumer = KafkaConsumer(source, second, consumer_options=FAST_GROUP)
    task = start(consumer)
    await wait_until(lambda: consumer.stats()["assigned"], 30, "the assignment")
    await produce(kafka_bootstrap, topic, [f"new-{i}" for i in range(10)])
    await wait_until(lambda: len(second.events) == 10, 30, "new events")
    await consumer.stop()
    await task
    assert sorted(second.data()) == sorted(f"new-{i}" for i in range(10))


async def test_latest_initial_offset_skips_what_was_there_before_the_group(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    # Knative: initialOffset applies to a group without committed offsets; ``latest`` means
    # only records produced after the consumer group starts (Kafka's auto.offset.reset).
    topic = await kafka_topic(partitions=2)
    await produce(kafka_bootstrap, topic, [f"old-{i}" for i in range(200)])
    sink = RecordingSink()
    consumer = KafkaConsumer(
        make_source(kafka_bootstrap, [topic], initial_offset="latest"),
        sink,
        consumer_options=FAST_GROUP,
    )
    task = start(consumer)
    # The group's start position is fixed some time after it joins: keep producing until new
    # records arrive, then every later record must arrive and no old one ever.
    produced = 0
    deadline = time.monotonic() + 30
    while not sink.events:
        assert time.monotonic() < deadline, "no record produced after the start arrived"
        await produce(kafka_bootstrap, topic, [f"new-{produced}"])
        produced += 1
        await asyncio.sleep(0.2)
    await produce(kafka_bootstrap, topic, [f"after-{i}" for i in range(20)])
    await wait_until(
        lambda: {f"after-{i}" for i in range(20)} <= set(sink.data()), 30, "the later records"
    )
    await consumer.stop()
    await task
    assert not [value for value in sink.data() if value.startswith("old-")]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_records_become_events(
    kafka_bootstrap: str, kafka_topic: TopicFactory, codec: str
) -> None:
    # Producers often compress (Kafka's compression.type); the broker keeps the producer's
    # codec, so the source must read all four.
    topic = await kafka_topic(partitions=1)
    values = [f"{codec}-{i}-" + "x" * 200 for i in range(50)]
    await produce(kafka_bootstrap, topic, values, compression=codec)
    sink = RecordingSink()
    consumer = KafkaConsumer(make_source(kafka_bootstrap, [topic]), sink)
    task = start(consumer)
    await wait_until(lambda: _has(sink, 50), 30, "50 events")
    await consumer.stop()
    await task
    assert sink.data() == values
    assert consumer.stats()["dropped"] == 0


async def test_two_members_of_one_group_split_the_partitions(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=4)
    source = make_source(kafka_bootstrap, [topic])
    sinks = [RecordingSink(), RecordingSink()]
    consumers = [
        KafkaConsumer(source, sink, client_id=f"member-{i}", consumer_options=FAST_GROUP)
        for i, sink in enumerate(sinks)
    ]
    tasks = [start(c) for c in consumers]

    def split() -> bool:
        assigned = [set(c.stats()["assigned"]) for c in consumers]
        return (
            all(assigned)
            and not (assigned[0] & assigned[1])
            and len(assigned[0] | assigned[1]) == 4
        )

    await wait_until(split, 60, "both members to own partitions")
    count = 400
    await produce(kafka_bootstrap, topic, [str(i) for i in range(count)])
    await wait_until(lambda: sum(len(s.events) for s in sinks) >= count, 30, "all events")
    for consumer in consumers:
        await consumer.stop()
    await asyncio.gather(*tasks)

    partitions = [{e["subject"].split("#")[0] for e in s.events} for s in sinks]
    assert all(partitions)
    assert not partitions[0] & partitions[1]
    assert sorted(int(v) for s in sinks for v in s.data()) == list(range(count))


@pytest.mark.timeout(240)  # above the sum of its waits: a slow run fails with their message
async def test_a_killed_member_loses_nothing(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=4)
    count = 12_000
    source = make_source(kafka_bootstrap, [topic])
    gate = asyncio.Event()
    sink = RecordingSink(gate=gate, gate_after=count // 4)  # the kill lands mid-stream
    options: dict[str, Any] = {"batch_size": 100, "max_in_flight": 200, "commit_interval_s": 0.2}
    victim = KafkaConsumer(source, sink, consumer_options=FAST_GROUP, **options)
    victim_task = start(victim)

    producing = asyncio.create_task(produce(kafka_bootstrap, topic, [str(i) for i in range(count)]))
    await wait_until(
        # A first commit may only pin the start (offset 0 of a partition whose first record
        # is still in flight): wait for one that covers delivered records.
        lambda: len(sink.events) >= count // 4 and sum(victim.stats()["committed"].values()) > 0,
        60,
        "a quarter of the stream and a commit past it",
    )
    victim_task.cancel()  # abrupt: no stop(), no drain, no final commit
    with pytest.raises(asyncio.CancelledError):
        await victim_task
    delivered_before = len(sink.events)
    assert delivered_before < count
    gate.set()

    successor = KafkaConsumer(source, sink, consumer_options=FAST_GROUP, **options)
    successor_task = start(successor)
    await producing
    await wait_until(
        lambda: len({e["id"] for e in sink.events}) >= count, 90, "every event after the kill"
    )
    await successor.stop()
    await successor_task

    seen = Counter(sink.data())
    assert set(seen) == {str(i) for i in range(count)}
    duplicates = sum(seen.values()) - count
    # At-least-once: only what the victim delivered beyond its last commit comes again.
    committed = sum(victim.stats()["committed"].values())
    report = f"{delivered_before=} {committed=} {duplicates=}"
    assert 0 < committed <= delivered_before, report
    assert duplicates <= delivered_before - committed, report
