"""RocketMQSource: mapping and the receive/ack/extend logic at the client boundary.

The double below stands where Apache's SimpleConsumer does and keeps RocketMQ's rule: a
received message not acknowledged within its invisible duration is received again. The same
behaviour against a real RocketMQ 5 is in tests/integration/sources/test_rocketmq_source.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from knray.broker.outcome import DeliveryStatus, Outcome
from knray.events import CloudEvent
from knray.manifests import load_manifests
from knray.manifests.rocketmq_source import RocketMQSource
from knray.sources.rocketmq import (
    EVENT_TYPE,
    KEYS_EXTENSION,
    RocketMQClient,
    RocketMQConnectError,
    consumer,
    property_extension_name,
    to_event,
)

MANIFEST = """
apiVersion: sources.eventing.knative.dev/v1alpha1
kind: RocketMQSource
metadata:
  name: apacherocketmqsource
spec:
  topic: test
  namesrvAddr: 127.0.0.1:8081
  groupName: group1
  ceOverrides:
    extensions:
      team: shop
  sink:
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: event-display
"""


@dataclass
class Message:
    message_id: str
    body: bytes
    tag: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    born_timestamp: int = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


class MemoryConsumer:
    """A SimpleConsumer in memory: receive hides messages; unacked ones come back."""

    def __init__(self, messages: list[Message]) -> None:
        self.ready = list(messages)
        self.invisible: dict[str, Message] = {}
        self.acked: list[str] = []
        self.extended: list[str] = []
        self.started = self.stopped = False
        self.topics: list[str] = []

    def startup(self) -> None:
        self.started = True

    def subscribe(self, topic: str) -> None:
        self.topics.append(topic)

    def receive(self, max_message_num: int, invisible_duration: int) -> list[Any]:
        assert invisible_duration > 0
        batch, self.ready = self.ready[:max_message_num], self.ready[max_message_num:]
        for message in batch:
            self.invisible[message.message_id] = message
        return batch

    def ack(self, message: Any) -> None:
        self.acked.append(message.message_id)
        self.invisible.pop(message.message_id, None)

    def change_invisible_duration(self, message: Any, invisible_duration: int) -> None:
        self.extended.append(message.message_id)

    def shutdown(self) -> None:
        self.stopped = True

    def expire(self) -> None:
        """The invisible duration ended: what was not acknowledged is ready again."""
        self.ready.extend(self.invisible.values())
        self.invisible.clear()


class Sink:
    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.events: list[CloudEvent] = []
        self.hold = hold

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        if self.hold is not None:
            await self.hold.wait()
        self.events.extend(events)
        return [Outcome(DeliveryStatus.DELIVERED)] * len(events)


def source() -> RocketMQSource:
    (loaded,) = load_manifests(MANIFEST)
    assert isinstance(loaded, RocketMQSource)
    return loaded


async def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached")


def test_apache_sample_manifest_loads_with_its_field_names() -> None:
    loaded = source()
    assert loaded.spec.topic == "test"
    assert loaded.spec.namesrv_addr == "127.0.0.1:8081"
    assert loaded.consumer_group == "group1"
    assert loaded.spec.sink.ref is not None  # the bare reference of the sample
    (other,) = load_manifests(
        MANIFEST.replace("namesrvAddr", "nameServer").replace("groupName", "group")
    )
    assert isinstance(other, RocketMQSource)
    assert other.consumer_group == "group1"


def test_plain_message_mapping() -> None:
    event = to_event(
        source(),
        Message(
            "7F00-1", b'{"n":1}', tag="orders", properties={"content-type": "application/json"}
        ),
    )
    assert event.get_attributes() == {
        "specversion": "1.0",
        "id": "7F00-1",
        "source": "test",
        "type": EVENT_TYPE,
        "subject": "orders",
        "time": "2026-01-01T00:00:00.123Z",
        "datacontenttype": "application/json",
        "team": "shop",
    }
    assert event.get_data() == {"n": 1}


def test_keys_and_user_properties_become_extensions() -> None:
    event = to_event(
        source(),
        Message(
            "7F00-3",
            b"x",
            keys={"order-7", "customer-2"},
            properties={"Order-Id": "7", "region": "eu", "CE_contenttype": "text/plain"},
        ),
    )
    attributes = event.get_attributes()
    assert attributes[KEYS_EXTENSION] == "customer-2 order-7"
    assert attributes["rocketmqpropertyorderid"] == "7"
    assert attributes["rocketmqpropertyregion"] == "eu"
    assert attributes["datacontenttype"] == "text/plain"  # the binding's content type property
    assert property_extension_name("a_B-9.z") == "rocketmqpropertyab9z"


def test_the_java_sdk_binding_passes_through() -> None:
    # RocketmqMessageWriter (CloudEvents sdk-java): content type in CE_contenttype, and an
    # event without data as a one-NUL body.
    properties = {
        "CE_specversion": "1.0",
        "CE_id": "ce-10",
        "CE_source": "/app",
        "CE_type": "t.y",
        "CE_contenttype": "application/json",
    }
    with_data = to_event(source(), Message("7F00-4", b'{"a":1}', properties=properties))
    assert with_data.get_attributes()["datacontenttype"] == "application/json"
    assert with_data.get_data() == {"a": 1}
    without = {k: v for k, v in properties.items() if k != "CE_contenttype"}
    empty = to_event(source(), Message("7F00-5", b"\0", properties=without))
    assert empty.get_data() is None
    assert empty.get_id() == "ce-10"


async def test_an_acknowledged_message_never_has_its_lease_extended() -> None:
    # On a real Broker, extending an acknowledged message's invisibility delivers it again.
    memory = MemoryConsumer([Message("1", b"x")])
    client = RocketMQClient(source(), lambda _s: memory)
    await client.connect()
    (message,) = await client.fetch(10, 0.1)
    snapshot = [message]  # the lease loop's list, taken before the ack
    await client.ack([message])
    await client.keep(snapshot)
    assert memory.acked == ["1"]
    assert memory.extended == []
    await client.close()


async def test_a_failed_extension_keeps_the_receipt_handle() -> None:
    # Apache's client stores the answer's (empty) handle even when the change failed.
    class FailingChange(MemoryConsumer):
        def change_invisible_duration(self, message: Any, invisible_duration: int) -> None:
            message.receipt_handle = ""
            raise RuntimeError("changeInvisibleDuration failed: status is abnormal")

    memory = FailingChange([Message("1", b"x")])
    client = RocketMQClient(source(), lambda _s: memory)
    await client.connect()
    (message,) = await client.fetch(10, 0.1)
    message.receipt_handle = "0 1 30000 0 0 broker-a 0 0 0"
    with pytest.raises(RuntimeError, match="1 of 1"):
        await client.keep([message])
    assert message.receipt_handle == "0 1 30000 0 0 broker-a 0 0 0"
    await client.close()


def test_lease_extension_can_be_turned_off() -> None:
    # For a Proxy in local mode, which corrupts receipt handles on a second extension.
    options: dict[str, Any] = {"make_consumer": lambda _s: MemoryConsumer([])}
    assert consumer(source(), Sink(), 0, options).keep_interval_s == 10
    off = consumer(source(), Sink(), 0, {**options, "extend_invisibility": False})
    assert off.keep_interval_s is None


async def test_connect_names_a_missing_topic_and_shuts_the_client_down() -> None:
    class NoRoute(MemoryConsumer):
        def subscribe(self, topic: str) -> None:
            raise RuntimeError(f"failed to fetch topic:{topic} route.")

    memory = NoRoute([])
    client = RocketMQClient(source(), lambda _s: memory, connect_timeout_s=0.3)
    with pytest.raises(RocketMQConnectError, match=r"127\.0\.0\.1:8081"):
        await client.connect()
    assert memory.stopped


async def test_connect_names_an_unknown_group() -> None:
    class NoSettings(MemoryConsumer):
        def __init__(self) -> None:
            super().__init__([])
            self._init_settings_event = threading.Event()  # the Proxy never answers

    memory = NoSettings()
    client = RocketMQClient(source(), lambda _s: memory, connect_timeout_s=0.2)
    with pytest.raises(RocketMQConnectError, match="group1"):
        await client.connect()
    assert memory.topics == ["test"]
    assert memory.stopped


def test_a_cloudevent_in_properties_passes_through() -> None:
    properties = {
        "CE_specversion": "1.0",
        "CE_id": "ce-9",
        "CE_source": "/app",
        "CE_type": "t.x",
        "CE_datacontenttype": "text/plain",
    }
    event = to_event(source(), Message("7F00-2", b"hi", properties=properties))
    assert event.get_attributes() == {
        "specversion": "1.0",
        "id": "ce-9",
        "source": "/app",
        "type": "t.x",
        "datacontenttype": "text/plain",
        "team": "shop",
    }


async def test_acks_only_after_outcome_and_a_dead_consumer_loses_nothing() -> None:
    memory = MemoryConsumer([Message(str(i), str(i).encode()) for i in range(40)])
    hold = asyncio.Event()
    sink = Sink(hold)
    options = {"make_consumer": lambda _s: memory, "batch_size": 10, "max_in_flight": 20}
    victim = consumer(source(), sink, 0, {**options, "keep_interval_s": 0.01})
    task = asyncio.create_task(victim.run())
    await wait_for(lambda: len(memory.invisible) == 20 and memory.extended)
    assert memory.acked == []  # nothing acknowledged before an outcome
    task.cancel()  # dies with 20 messages received and not acknowledged
    await asyncio.gather(task, return_exceptions=True)
    memory.expire()
    hold.set()

    successor = consumer(source(), sink, 0, options)
    successor_task = asyncio.create_task(successor.run())
    await wait_for(lambda: len(memory.acked) == 40)
    await successor.stop()
    await successor_task
    assert sorted(int(e.get_id()) for e in sink.events) == list(range(40))
    assert memory.started
    assert memory.stopped
    assert set(memory.topics) == {"test"}
