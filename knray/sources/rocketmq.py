"""RocketMQ consumer of a RocketMQSource, on Apache's official Python client (gRPC, v5).

The client (``rocketmq-python-client``, from apache/rocketmq-clients) talks to a RocketMQ 5
proxy: ``namesrvAddr`` is that endpoint (``host:8081``; several separated by ``;``).
``groupName`` is the consumer group, ``accessToken`` a Secret whose value is JSON
``{"accessKeyId": ..., "accessKeySecret": ...}`` (rocketmq-knative ``Credentials``).
Its ``SimpleConsumer`` receives messages that stay invisible to the group for
``invisible_duration_s``; knray acknowledges a message after its event's outcome is finished
and extends the invisibility of messages still in flight, so a consumer that dies has its
messages redelivered once the duration ends: at-least-once.

Mapping: a message whose user properties carry a CloudEvent (RocketMQ binding: ``CE_``
prefixed attributes) passes through; any other becomes an event with the constants of
rocketmq-knative's types (type ``apache.rocketmq``, source the topic), id the message id,
subject the tag, ``time`` the born timestamp, the body as data (``datacontenttype`` from a
``content-type`` property). ``ceOverrides`` apply to every event.

Not run against a RocketMQ server (none can be installed where knray is developed): the
mapping and the receive/ack/extend logic are tested against an in-memory SimpleConsumer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import rocketmq

from knray.broker.outcome import EventSink
from knray.errors import InvalidEventError
from knray.events import CloudEvent
from knray.events.message import ROCKETMQ_PREFIX, from_message
from knray.manifests.base import Resource
from knray.manifests.rocketmq_source import RocketMQSource
from knray.sources.acking import AckingConsumer
from knray.sources.kafka_security import SecretResolver

__all__ = ["EVENT_TYPE", "RocketMQClient", "SimpleConsumer", "consumer", "to_event"]

# rocketmqsource_types.go: RocketMQSourceEventType; the source is RocketMQEventSource(topic).
EVENT_TYPE: Final = "apache.rocketmq"
_CONTENT_TYPE: Final = "content-type"


class SimpleConsumer(Protocol):
    """The part of ``rocketmq.SimpleConsumer`` knray uses (blocking calls)."""

    def startup(self) -> None: ...

    def receive(self, max_message_num: int, invisible_duration: int) -> list[Any]: ...

    def ack(self, message: Any) -> None: ...

    def change_invisible_duration(self, message: Any, invisible_duration: int) -> None: ...

    def shutdown(self) -> None: ...


def to_event(source: RocketMQSource, message: Any) -> CloudEvent:
    """The event of one received message (see the module doc)."""
    properties: dict[str, Any] = dict(message.properties or {})
    body: bytes = message.body or b""
    overrides = source.spec.ce_overrides.extensions if source.spec.ce_overrides else {}
    content_type = next((v for k, v in properties.items() if k.lower() == _CONTENT_TYPE), None)
    try:
        event = from_message(properties, content_type, body, prefix=ROCKETMQ_PREFIX)
    except InvalidEventError:
        event = None  # an invalid CloudEvent is a plain message
    if event is None:
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(message.message_id),
            "source": source.spec.topic,
            "type": EVENT_TYPE,
        }
        if message.tag:
            attributes["subject"] = str(message.tag)
        if message.born_timestamp:
            moment = datetime.fromtimestamp(message.born_timestamp / 1000, UTC)
            attributes["time"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if content_type and body:
            attributes["datacontenttype"] = str(content_type)
        event = CloudEvent.from_encoded(attributes, body)
    return event.evolve(dict(overrides)) if overrides else event


class RocketMQClient:
    """The MessageClient of a RocketMQSource around a SimpleConsumer (calls run in threads,
    the client library is blocking)."""

    def __init__(
        self,
        source: RocketMQSource,
        make_consumer: Callable[[int], SimpleConsumer],
        *,
        invisible_duration_s: int = 30,
    ) -> None:
        self.source = source
        self.make_consumer = make_consumer
        self.invisible_duration_s = invisible_duration_s
        self._consumer: SimpleConsumer | None = None

    async def connect(self) -> None:
        self._consumer = self.make_consumer(self.invisible_duration_s)
        await asyncio.to_thread(self._consumer.startup)

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Any]:
        del timeout_s  # the SimpleConsumer long-polls for its own await duration
        messages = await asyncio.to_thread(
            self._require().receive, min(max_messages, 32), self.invisible_duration_s
        )
        return list(messages or [])

    def to_event(self, message: Any) -> CloudEvent:
        return to_event(self.source, message)

    async def ack(self, messages: Sequence[Any]) -> None:
        consumer = self._require()
        for message in messages:
            await asyncio.to_thread(consumer.ack, message)

    async def keep(self, messages: Sequence[Any]) -> None:
        consumer = self._require()
        for message in messages:
            await asyncio.to_thread(
                consumer.change_invisible_duration, message, self.invisible_duration_s
            )

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await asyncio.to_thread(consumer.shutdown)

    def _require(self) -> SimpleConsumer:
        if self._consumer is None:
            raise RuntimeError("RocketMQClient is not connected")
        return self._consumer


def official_consumer(
    source: RocketMQSource, secrets: SecretResolver | None = None, await_duration_s: int = 1
) -> Callable[[int], SimpleConsumer]:
    """A factory of Apache's ``rocketmq.SimpleConsumer`` subscribed to the source's topic."""

    def make(invisible_duration_s: int) -> SimpleConsumer:
        del invisible_duration_s  # passed on each receive
        access_key, secret_key = "", ""
        token = (secrets or SecretResolver()).resolve(source.spec.access_token, "accessToken")
        if token:
            credentials = json.loads(token)
            access_key = credentials.get("accessKeyId", "")
            secret_key = credentials.get("accessKeySecret", "")
        configuration = rocketmq.ClientConfiguration(
            source.spec.namesrv_addr, rocketmq.Credentials(access_key, secret_key)
        )
        built: SimpleConsumer = rocketmq.SimpleConsumer(
            configuration,
            source.consumer_group,
            {source.spec.topic: rocketmq.FilterExpression()},
            await_duration=await_duration_s,
        )
        return built

    return make


def consumer(
    source: Resource, sink: EventSink, index: int, options: Mapping[str, Any]
) -> AckingConsumer[Any]:
    """The registry's factory; ``options``: ``make_consumer`` (a SimpleConsumer factory,
    default Apache's client), ``invisible_duration_s`` (30), ``secrets`` and AckingConsumer
    keywords."""
    del index  # members share the consumer group
    if not isinstance(source, RocketMQSource):
        raise TypeError(f"expected a RocketMQSource, got {source.KIND}")
    settings = dict(options)
    invisible_s = int(settings.pop("invisible_duration_s", 30))
    make = settings.pop("make_consumer", None) or official_consumer(
        source, settings.pop("secrets", None)
    )
    settings.setdefault("keep_interval_s", invisible_s / 3)
    client = RocketMQClient(source, make, invisible_duration_s=invisible_s)
    return AckingConsumer(client, sink, **settings)
