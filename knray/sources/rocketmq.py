"""RocketMQ consumer of a RocketMQSource, on Apache's official Python client (gRPC, v5).

The client (``rocketmq-python-client``, from apache/rocketmq-clients) talks to a RocketMQ 5
Proxy: ``namesrvAddr`` is that endpoint (``host:8081``; several separated by ``;``).
``groupName`` is the consumer group, ``accessToken`` a Secret whose value is JSON
``{"accessKeyId": ..., "accessKeySecret": ...}`` (rocketmq-knative ``Credentials``). The topic
and the group must exist: the Proxy creates neither, and it never answers a consumer whose
group is unknown, so :meth:`RocketMQClient.connect` checks both and fails with the reason.

Its ``SimpleConsumer`` receives messages that stay invisible to the group for
``invisible_duration_s`` (whole seconds; a stock Proxy refuses less than 10). knray
acknowledges a message after its event's outcome is finished and extends the invisibility
of messages still in flight (ChangeInvisibleDuration every third of the duration), so a
consumer that dies has its messages redelivered once the duration ends: at-least-once.
Measured on RocketMQ 5.3.3 and 5.5.0: a Proxy in local mode (the Broker in the Proxy's JVM,
as ``mqbroker --enable-proxy`` runs it) corrupts the receipt handle on the second change
(it loses the commit log offset), and the message is handed out again while still in
flight: a duplicate, never a loss. There, set ``extend_invisibility`` to False and an
invisible duration above the longest delivery. A Proxy in cluster mode is not affected.
A receive long-polls: the Proxy holds it at least 5 s when no message is there
(``grpcClientConsumerMinLongPollingTimeoutMillis``), so stopping a consumer waits up to that.

Mapping: a message whose user properties carry a CloudEvent passes through (binary mode:
``CE_`` prefixed attributes, the content type in ``CE_contenttype`` and a body of one NUL
byte for an event without data, as the CloudEvents Java SDK's RocketMQ binding writes them;
structured mode: ``CE_contenttype`` ``application/cloudevents+json``). Any other message
becomes an event with the constants of rocketmq-knative's types (type ``apache.rocketmq``,
source the topic): id the message id, subject the tag, ``time`` the born timestamp, the
message keys in ``rocketmqkeys`` (space separated, as RocketMQ joins them), each user
property in an extension ``rocketmqproperty`` + its name (lower-cased, only ``[a-z0-9]``, as
KafkaSource names its ``kafkaheader`` extensions), the body as data (``datacontenttype``
from ``CE_contenttype`` or a ``content-type`` property). ``ceOverrides`` apply to every event.

Tested against Apache RocketMQ 5.5.0 and 5.3.3 (NameServer, Broker and a cluster-mode Proxy,
started by ``knray.testing.rocketmq``): see docs/sources.md.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import rocketmq

from knray.broker.outcome import EventSink
from knray.errors import InvalidEventError, KnrayError
from knray.events import CloudEvent
from knray.events.message import ROCKETMQ_PREFIX, from_message
from knray.manifests.base import Resource
from knray.manifests.rocketmq_source import RocketMQSource
from knray.sources.acking import AckingConsumer
from knray.sources.kafka_security import SecretResolver

__all__ = [
    "EVENT_TYPE",
    "KEYS_EXTENSION",
    "RocketMQClient",
    "RocketMQConnectError",
    "SimpleConsumer",
    "consumer",
    "property_extension_name",
    "to_event",
]

# rocketmqsource_types.go: RocketMQSourceEventType; the source is RocketMQEventSource(topic).
EVENT_TYPE: Final = "apache.rocketmq"
KEYS_EXTENSION: Final = "rocketmqkeys"
_PROPERTY_PREFIX: Final = "rocketmqproperty"
_CONTENT_TYPE: Final = "content-type"
# The CloudEvents Java SDK's RocketmqConstants: PROPERTY_CONTENT_TYPE and EMPTY_BODY (RocketMQ
# refuses an empty body, so an event without data travels as one NUL byte).
_BINDING_CONTENT_TYPE: Final = "ce_contenttype"
_EMPTY_BODY: Final = b"\0"
# The Proxy holds a receive at least 5 s; the client's deadline is its request timeout (3 s)
# plus this, which must exceed the hold or every receive fails ("deadline ... not enough").
_AWAIT_DURATION_S: Final = 5
_MAX_BATCH: Final = 32  # the Proxy's grpcClientConsumerLongPollingBatchSize


class RocketMQConnectError(KnrayError, ConnectionError):
    """The consumer cannot start: the Proxy is unreachable, or the topic or the consumer
    group does not exist."""


class SimpleConsumer(Protocol):
    """The part of ``rocketmq.SimpleConsumer`` knray uses (blocking calls)."""

    def startup(self) -> None: ...

    def subscribe(self, topic: str) -> None: ...

    def receive(self, max_message_num: int, invisible_duration: int) -> list[Any]: ...

    def ack(self, message: Any) -> None: ...

    def change_invisible_duration(self, message: Any, invisible_duration: int) -> None: ...

    def shutdown(self) -> None: ...


def property_extension_name(name: str) -> str:
    """``rocketmqproperty`` + the property name lower-cased, all but [a-z0-9] removed."""
    kept = (c for c in name.lower() if ("a" <= c <= "z") or ("0" <= c <= "9"))
    return _PROPERTY_PREFIX + "".join(kept)


def to_event(source: RocketMQSource, message: Any) -> CloudEvent:
    """The event of one received message (see the module doc)."""
    properties = {str(k): str(v) for k, v in (message.properties or {}).items()}
    body: bytes = message.body or b""
    overrides = source.spec.ce_overrides.extensions if source.spec.ce_overrides else {}
    binding_type = _pop(properties, _BINDING_CONTENT_TYPE)
    content_type = binding_type or _pop(properties, _CONTENT_TYPE)
    try:
        data = None if body in (b"", _EMPTY_BODY) else body
        event = from_message(properties, content_type, data, prefix=ROCKETMQ_PREFIX)
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
        keys = sorted(str(key) for key in (message.keys or ()))  # a set in the client
        if keys:
            attributes[KEYS_EXTENSION] = " ".join(keys)
        if content_type and body:
            attributes["datacontenttype"] = content_type
        # Prefixed, so no property can stand for a context attribute.
        attributes.update((property_extension_name(k), v) for k, v in properties.items())
        event = CloudEvent.from_encoded(attributes, body)
    return event.evolve(dict(overrides)) if overrides else event


def _pop(properties: dict[str, str], lowered: str) -> str | None:
    name = next((k for k in properties if k.lower() == lowered), None)
    return properties.pop(name) if name is not None else None


class RocketMQClient:
    """The MessageClient of a RocketMQSource around a SimpleConsumer (calls run in threads,
    the client library is blocking)."""

    def __init__(
        self,
        source: RocketMQSource,
        make_consumer: Callable[[int], SimpleConsumer],
        *,
        invisible_duration_s: int = 30,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if invisible_duration_s < 1:
            raise ValueError("invisible_duration_s must be at least 1 (whole seconds)")
        self.source = source
        self.make_consumer = make_consumer
        self.invisible_duration_s = invisible_duration_s
        self.connect_timeout_s = connect_timeout_s
        self._consumer: SimpleConsumer | None = None
        # Extending a lease gives the message a new receipt handle; an ack racing it would
        # use the old one, which the Broker ignores, and the message would come back.
        self._handles = asyncio.Lock()
        # Received and not yet acknowledged, by id(): extending the lease of a message
        # already acknowledged makes the Broker deliver it again.
        self._leases: dict[int, Any] = {}

    async def connect(self) -> None:
        consumer = self.make_consumer(self.invisible_duration_s)
        await asyncio.to_thread(self._start, consumer)
        self._consumer = consumer

    def _start(self, consumer: SimpleConsumer) -> None:
        spec = self.source.spec
        deadline = time.monotonic() + self.connect_timeout_s
        consumer.startup()
        try:
            # The client's startup succeeds whatever the Proxy says; subscribing fetches the
            # topic's route and fails when there is none.
            while True:
                try:
                    consumer.subscribe(spec.topic)
                    break
                except Exception as error:
                    if time.monotonic() > deadline:
                        raise RocketMQConnectError(_route_problem(spec, error)) from error
                    time.sleep(0.2)
            # The Proxy sends the client its settings only for a group it knows; a receive
            # before them fails with a NullPointerException from the Proxy.
            settings = getattr(consumer, "_init_settings_event", None)
            if isinstance(settings, threading.Event) and not settings.wait(
                max(deadline - time.monotonic(), 0.0)
            ):
                raise RocketMQConnectError(
                    f"the RocketMQ proxy at {spec.namesrv_addr} sent no settings for consumer "
                    f"group {self.source.consumer_group!r} within {self.connect_timeout_s:.0f} "
                    "s: the group does not exist (create it, e.g. mqadmin updateSubGroup)"
                )
        except BaseException:
            consumer.shutdown()
            raise

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Any]:
        del timeout_s  # the Proxy long-polls for its own minimum (see the module doc)
        messages = list(
            await asyncio.to_thread(
                self._require().receive, min(max_messages, _MAX_BATCH), self.invisible_duration_s
            )
            or []
        )
        self._leases.update((id(message), message) for message in messages)
        return messages

    def to_event(self, message: Any) -> CloudEvent:
        return to_event(self.source, message)

    async def ack(self, messages: Sequence[Any]) -> None:
        consumer = self._require()
        async with self._handles:
            for message in messages:
                self._leases.pop(id(message), None)  # acked or not, never extended again
            await asyncio.to_thread(_each, consumer.ack, messages, "ack")

    async def keep(self, messages: Sequence[Any]) -> None:
        consumer = self._require()
        seconds = self.invisible_duration_s
        async with self._handles:
            # The caller's list was taken before the lock: some may be acknowledged by now.
            leased = [message for message in messages if id(message) in self._leases]
            await asyncio.to_thread(
                _each,
                lambda message: _extend(consumer, message, seconds),
                leased,
                "extending the invisible duration",
            )

    async def close(self) -> None:
        self._leases.clear()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await asyncio.to_thread(consumer.shutdown)

    def _require(self) -> SimpleConsumer:
        if self._consumer is None:
            raise RuntimeError("RocketMQClient is not connected")
        return self._consumer


def _extend(consumer: SimpleConsumer, message: Any, seconds: int) -> None:
    handle = getattr(message, "receipt_handle", None)
    try:
        consumer.change_invisible_duration(message, seconds)
    except Exception:
        # The client stores the answer's receipt handle even when the change failed (an
        # empty one): every later call would fail. The old handle holds until it expires.
        if handle is not None:
            message.receipt_handle = handle
        raise


def _each(call: Callable[[Any], None], messages: Sequence[Any], what: str) -> None:
    # One thread hop for a batch; a failure does not stop the others.
    errors = []
    for message in messages:
        try:
            call(message)
        except Exception as error:
            errors.append(error)
    if errors:
        raise RuntimeError(f"{what} failed for {len(errors)} of {len(messages)}: {errors[0]!r}")


def _route_problem(spec: Any, error: Exception) -> str:
    unreachable = [a for a in spec.namesrv_addr.split(";") if a.strip() and not _answers(a)]
    if unreachable:
        return (
            f"the RocketMQ proxy at {';'.join(unreachable)} does not accept connections "
            f"(namesrvAddr must name a RocketMQ 5 proxy's gRPC endpoint): {error}"
        )
    return (
        f"the RocketMQ proxy at {spec.namesrv_addr} has no route for topic {spec.topic!r}: "
        f"the topic does not exist (create it, e.g. mqadmin updateTopic): {error}"
    )


def _answers(address: str) -> bool:
    host, _, port = address.strip().removeprefix("http://").removeprefix("https://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def official_consumer(
    source: RocketMQSource,
    secrets: SecretResolver | None = None,
    await_duration_s: int = _AWAIT_DURATION_S,
) -> Callable[[int], SimpleConsumer]:
    """A factory of Apache's ``rocketmq.SimpleConsumer`` for the source's group (the client
    subscribes to the topic when it connects)."""

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
            configuration, source.consumer_group, await_duration=await_duration_s
        )
        return built

    return make


def consumer(
    source: Resource, sink: EventSink, index: int, options: Mapping[str, Any]
) -> AckingConsumer[Any]:
    """The registry's factory; ``options``: ``make_consumer`` (a SimpleConsumer factory,
    default Apache's client), ``invisible_duration_s`` (30), ``extend_invisibility`` (True:
    see the module doc), ``await_duration_s`` (5, the long-poll of a receive),
    ``connect_timeout_s`` (10), ``secrets`` and AckingConsumer keywords."""
    del index  # members share the consumer group
    if not isinstance(source, RocketMQSource):
        raise TypeError(f"expected a RocketMQSource, got {source.KIND}")
    settings = dict(options)
    invisible_s = int(settings.pop("invisible_duration_s", 30))
    await_s = int(settings.pop("await_duration_s", _AWAIT_DURATION_S))
    connect_timeout_s = float(settings.pop("connect_timeout_s", 10.0))
    secrets = settings.pop("secrets", None)
    make = settings.pop("make_consumer", None) or official_consumer(source, secrets, await_s)
    extend = bool(settings.pop("extend_invisibility", True))  # see the module doc
    settings.setdefault("keep_interval_s", invisible_s / 3 if extend else None)
    client = RocketMQClient(
        source, make, invisible_duration_s=invisible_s, connect_timeout_s=connect_timeout_s
    )
    return AckingConsumer(client, sink, **settings)
