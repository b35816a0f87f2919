"""NATS JetStream consumer of a NatsJetStreamSource (nats-py), on the AckingConsumer loop.

The source's durable pull consumer (``consumerName``, explicit acks, ``ackWait``, filtered on
``subject`` when set) is the consumer group: every member pulls from it. A new durable
consumer starts at the beginning of the stream. Each message is acknowledged after its
event's outcome is finished; messages still in flight get ``in_progress`` (+WPI) every third
of ``ackWait`` so a slow subscriber does not cause redeliveries; a consumer that dies stops
doing so, and JetStream redelivers its messages once ``ackWait`` has passed.

Mapping: a message that is a CloudEvent in the NATS binding (``ce-`` headers, or a structured
``Content-Type``) passes through; any other message becomes an event with type
``dev.knray.natsjetstream.event``, source
``/apis/v1/namespaces/NS/natsjetstreamsources/NAME#STREAM``, id ``STREAM:SEQUENCE`` (the same
on every redelivery), subject the NATS subject, ``time`` the stream's timestamp, the payload
as data and a ``Content-Type`` header as ``datacontenttype``. ``ceOverrides`` apply to all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from knray.broker.outcome import EventSink
from knray.errors import InvalidEventError
from knray.events import CloudEvent
from knray.events.message import NATS_PREFIX, from_message, message_time
from knray.manifests.base import Resource
from knray.manifests.nats_jetstream_source import NatsJetStreamSource
from knray.sources.acking import AckingConsumer

__all__ = ["EVENT_TYPE", "NatsJetStreamClient", "consumer", "event_source", "to_event"]

EVENT_TYPE: Final = "dev.knray.natsjetstream.event"
_CONTENT_TYPE: Final = "content-type"


def event_source(namespace: str, name: str, stream: str) -> str:
    """``/apis/v1/namespaces/NS/natsjetstreamsources/NAME#STREAM``."""
    return f"/apis/v1/namespaces/{namespace}/natsjetstreamsources/{name}#{stream}"


def to_event(
    source: NatsJetStreamSource,
    subject: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    sequence: int,
    timestamp: datetime | None = None,
) -> CloudEvent:
    """The event of one message (see the module doc)."""
    overrides = source.spec.ce_overrides.extensions if source.spec.ce_overrides else {}
    content_type = next((v for k, v in headers.items() if k.lower() == _CONTENT_TYPE), None)
    try:
        event = from_message(headers, content_type, body, prefix=NATS_PREFIX)
    except InvalidEventError:
        event = None  # an invalid CloudEvent is a plain message
    if event is None:
        stream = source.spec.stream
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"{stream}:{sequence}",
            "source": event_source(source.namespace, source.name, stream),
            "type": EVENT_TYPE,
            "subject": subject,
        }
        if timestamp is not None:
            attributes["time"] = message_time(timestamp)
        if content_type and body:
            attributes["datacontenttype"] = content_type
        event = CloudEvent.from_encoded(attributes, body)
    return event.evolve(dict(overrides)) if overrides else event


class NatsJetStreamClient:
    """The MessageClient of a NatsJetStreamSource: pulls from its durable consumer."""

    def __init__(self, source: NatsJetStreamSource, servers: Sequence[str]) -> None:
        self.source = source
        self.servers = list(servers)
        self._nc: Client | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def connect(self) -> None:
        spec = self.source.spec
        self._nc = await nats.connect(self.servers, allow_reconnect=True)
        js = self._nc.jetstream()
        config = ConsumerConfig(
            durable_name=self.source.durable_name,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=spec.ack_wait_s,
            filter_subject=spec.subject or None,
        )
        await js.add_consumer(spec.stream, config)
        self._subscription = await js.pull_subscribe_bind(
            self.source.durable_name, stream=spec.stream
        )

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Msg]:
        if self._subscription is None:
            raise RuntimeError("NatsJetStreamClient is not connected")
        try:
            return list(await self._subscription.fetch(max_messages, timeout=timeout_s))
        except (NatsTimeoutError, TimeoutError):
            return []

    def to_event(self, message: Msg) -> CloudEvent:
        metadata = message.metadata
        return to_event(
            self.source,
            message.subject,
            dict(message.headers or {}),
            message.data,
            sequence=metadata.sequence.stream,
            timestamp=metadata.timestamp,
        )

    async def ack(self, messages: Sequence[Msg]) -> None:
        for message in messages:
            await message.ack()

    async def keep(self, messages: Sequence[Msg]) -> None:
        for message in messages:
            await message.in_progress()

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            await nc.close()


def consumer(
    source: Resource, sink: EventSink, index: int, options: Mapping[str, Any]
) -> AckingConsumer[Msg]:
    """The registry's factory; ``options``: ``servers`` (overrides ``spec.servers``) and
    AckingConsumer keywords."""
    del index  # members share the durable consumer
    if not isinstance(source, NatsJetStreamSource):
        raise TypeError(f"expected a NatsJetStreamSource, got {source.KIND}")
    settings = dict(options)
    servers = settings.pop("servers", None) or source.spec.servers
    settings.setdefault("keep_interval_s", source.spec.ack_wait_s / 3)
    return AckingConsumer(NatsJetStreamClient(source, servers), sink, **settings)
