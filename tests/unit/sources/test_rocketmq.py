"""RocketMQSource: mapping and the receive/ack/extend logic at the client boundary.

No RocketMQ server can run here; the double below stands where Apache's SimpleConsumer does
and keeps RocketMQ's rule: a received message not acknowledged within its invisible duration
is received again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from knray.broker.outcome import DeliveryStatus, Outcome
from knray.events import CloudEvent
from knray.manifests import load_manifests
from knray.manifests.rocketmq_source import RocketMQSource
from knray.sources.rocketmq import EVENT_TYPE, consumer, to_event

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
    born_timestamp: int = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


class MemoryConsumer:
    """A SimpleConsumer in memory: receive hides messages; unacked ones come back."""

    def __init__(self, messages: list[Message]) -> None:
        self.ready = list(messages)
        self.invisible: dict[str, Message] = {}
        self.acked: list[str] = []
        self.extended: list[str] = []
        self.started = self.stopped = False

    def startup(self) -> None:
        self.started = True

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
