"""RabbitMQ consumer of a RabbitmqSource (aio-pika), on the AckingConsumer loop.

Mapping (eventing-rabbitmq adapter): a message that is a CloudEvent in the RabbitMQ binding
(``ce-`` headers, or a structured content type) passes through; any other message becomes an
event with type ``dev.knative.rabbitmq.event``, source
``/apis/v1/namespaces/NS/rabbitmqsources/NAME#QUEUE``, id the AMQP ``message_id`` (a random
UUID when the producer set none), ``time`` the AMQP ``timestamp`` when set, the body as data
and the message's content type as ``datacontenttype``. ``ceOverrides`` apply to every event.

Each message is acknowledged after its event's outcome is finished. ``parallelism`` is the
channel's prefetch and the number of events in flight, as in eventing-rabbitmq: with the
default 1, messages are delivered one at a time, in queue order. When the consumer dies
its channel closes and RabbitMQ requeues every unacknowledged message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)

from knray.broker.outcome import EventSink
from knray.errors import InvalidEventError
from knray.events import CloudEvent
from knray.events.message import RABBITMQ_PREFIX, from_message, message_time
from knray.manifests.base import Resource
from knray.manifests.rabbitmq_source import RabbitmqSource
from knray.sources.acking import AckingConsumer
from knray.sources.kafka_security import MissingSecretError, SecretResolver

__all__ = ["EVENT_TYPE", "RabbitMQClient", "amqp_url", "consumer", "event_source", "to_event"]

# sourcesv1alpha1.RabbitmqEventType
EVENT_TYPE: Final = "dev.knative.rabbitmq.event"
_DEFAULT_PORT: Final = 5672
log = logging.getLogger(__name__)
_CONTENT_TYPE_HEADER: Final = "content-type"


def event_source(namespace: str, name: str, queue: str) -> str:
    """``/apis/v1/namespaces/NS/rabbitmqsources/NAME#QUEUE`` (RabbitmqEventSource)."""
    return f"/apis/v1/namespaces/{namespace}/rabbitmqsources/{name}#{queue}"


def amqp_url(source: RabbitmqSource, secrets: SecretResolver | None = None) -> str:
    """The AMQP URL of the source's server.

    From ``rabbitmqClusterReference.connectionSecret`` (keys ``uri``, ``username``,
    ``password``; an ``amqp://``/``amqps://`` uri is used as given, any other gives its host),
    else ``name`` as the host; ``rabbitmqResourcesConfig.vhost`` selects the virtual host.
    """
    reference = source.spec.rabbitmq_cluster_reference
    vhost = source.spec.rabbitmq_resources_config.vhost
    resolver = secrets or SecretResolver()
    username, password, host = "guest", "guest", reference.name
    if reference.connection_secret is not None:
        secret = reference.connection_secret.name
        uri = resolver.lookup(secret, "uri")
        if uri is None:
            raise MissingSecretError(
                f"spec.rabbitmqClusterReference.connectionSecret: secret {secret!r} has no key "
                f"'uri' (environment variable {resolver.env_name(secret, 'uri')})"
            )
        uri = uri.strip()
        if uri.startswith(("amqp://", "amqps://")):
            url = uri.rstrip("/")
            if vhost and urlsplit(url).path in ("", "/"):
                url += "/" + quote(vhost, safe="")
            return url
        host = urlsplit(uri).hostname or uri
        username = (resolver.lookup(secret, "username") or username).strip()
        password = (resolver.lookup(secret, "password") or password).strip()
    path = "/" + quote(vhost, safe="") if vhost else "/"
    return (
        f"amqp://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{_DEFAULT_PORT}{path}"
    )


def to_event(
    source: RabbitmqSource,
    headers: Mapping[str, Any],
    content_type: str | None,
    body: bytes,
    *,
    message_id: str | None = None,
    timestamp: datetime | None = None,
) -> CloudEvent:
    """The event of one message (see the module doc)."""
    if not content_type:
        # eventing-rabbitmq reads a "content-type" header; the AMQP property comes first.
        header = next((v for k, v in headers.items() if k.lower() == _CONTENT_TYPE_HEADER), None)
        content_type = header.decode() if isinstance(header, bytes) else header
    overrides = source.spec.ce_overrides.extensions if source.spec.ce_overrides else {}
    try:
        event = from_message(headers, content_type, body, prefix=RABBITMQ_PREFIX)
    except InvalidEventError:
        event = None  # an invalid CloudEvent is a plain message (as KafkaSource does)
    if event is None:
        queue = source.spec.rabbitmq_resources_config.queue_name
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "id": message_id or str(uuid.uuid4()),
            "source": event_source(source.namespace, source.name, queue),
            "type": EVENT_TYPE,
        }
        if timestamp is not None:
            attributes["time"] = message_time(timestamp)
        if content_type and body:
            attributes["datacontenttype"] = content_type
        event = CloudEvent.from_encoded(attributes, body)
    return event.evolve(dict(overrides)) if overrides else event


class RabbitMQClient:
    """The MessageClient of a RabbitmqSource: consumes its queue with manual acks."""

    def __init__(
        self, source: RabbitmqSource, url: str, *, prefetch: int, connect_timeout_s: float = 10
    ) -> None:
        self.source = source
        self.url = url
        self.prefetch = prefetch
        self.connect_timeout_s = connect_timeout_s
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def connect(self) -> None:
        config = self.source.spec.rabbitmq_resources_config
        # A plain connection, reopened by fetch() when lost: a robust one would also reopen
        # after close() was interrupted, and keep taking messages nobody reads.
        self._received = asyncio.Queue()
        self._connection = await aio_pika.connect(self.url, timeout=self.connect_timeout_s)
        channel = await self._connection.channel()
        channel.close_callbacks.add(_log_close)
        self._channel = channel
        await channel.set_qos(prefetch_count=self.prefetch)
        if config.predeclared:
            queue = await channel.get_queue(config.queue_name, ensure=True)
        else:
            queue = await channel.declare_queue(
                config.queue_name,
                durable=True,
                arguments={"x-queue-type": config.queue_type.value},
            )
            # An exchange that exists keeps its type; a new one is a durable topic exchange,
            # bound with "#" so every message reaches the queue.
            exchange = await channel.declare_exchange(
                config.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            await queue.bind(exchange, routing_key="#")
        self._queue = queue
        await queue.consume(self._received.put, no_ack=False)

    async def fetch(self, max_messages: int, timeout_s: float) -> list[AbstractIncomingMessage]:
        if self._channel is None or self._channel.is_closed:
            # Lost: RabbitMQ requeued every unacknowledged message of the old channel (their
            # acks would fail now; the events are delivered again: at-least-once).
            await self.close()
            await self.connect()
        try:
            first = await asyncio.wait_for(self._received.get(), timeout_s)
        except TimeoutError:
            return []
        messages = [first]
        while len(messages) < max_messages and not self._received.empty():
            messages.append(self._received.get_nowait())
        return messages

    def to_event(self, message: AbstractIncomingMessage) -> CloudEvent:
        return to_event(
            self.source,
            dict(message.headers or {}),
            message.content_type,
            message.body,
            message_id=message.message_id,
            timestamp=message.timestamp,
        )

    async def ack(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        for message in messages:
            await message.ack()

    async def keep(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        del messages  # RabbitMQ holds unacknowledged messages as long as the channel lives

    async def close(self) -> None:
        self._channel = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None


def _log_close(channel: Any, reason: BaseException | None) -> None:
    if reason is not None and not isinstance(reason, asyncio.CancelledError):
        log.warning("RabbitMQ channel closed: %r", reason)


def consumer(
    source: Resource, sink: EventSink, index: int, options: Mapping[str, Any]
) -> AckingConsumer[AbstractIncomingMessage]:
    """The registry's factory; ``options``: ``url`` (overrides the manifest's server),
    ``secrets`` (a SecretResolver), and AckingConsumer keywords."""
    del index
    if not isinstance(source, RabbitmqSource):
        raise TypeError(f"expected a RabbitmqSource, got {source.KIND}")
    settings = dict(options)
    url = settings.pop("url", None) or amqp_url(source, settings.pop("secrets", None))
    parallelism = source.spec.rabbitmq_resources_config.parallelism
    settings.setdefault("max_in_flight", parallelism)
    settings.setdefault("batch_size", min(settings["max_in_flight"], 100))
    client = RabbitMQClient(source, url, prefetch=settings["max_in_flight"])
    return AckingConsumer(client, sink, **settings)
