"""Redis Streams consumer of a RedisStreamSource (``redis.asyncio``), on the AckingConsumer loop.

Mapping (eventing-redis adapter ``toEvent``): type ``dev.knative.sources.redisstream``,
source ``ADDRESS/STREAM``, id the entry id, data the entry's field/value list as a JSON array
``["field1", "value1", ...]`` (``application/json``; Knative marshals Go byte slices, knray
sends UTF-8 strings). An entry that already is a CloudEvent passes through: fields named like
the Kafka binding's headers (``ce_specversion``, ``ce_id``, ..., ``content-type``) with the data
in field ``data`` (binary mode), or ``content-type: application/cloudevents+json`` and the
event in ``data`` (structured mode). ``ceOverrides`` apply to every event.

Consumer group semantics (XREADGROUP): member ``index`` is the consumer ``GROUP-INDEX``; it
first reads back its own pending entries (delivered to a previous incarnation, never
XACKed), then new ones. Entries pending on a consumer idle longer than ``claim_idle_s`` are
claimed (XAUTOCLAIM), so a member that never returns loses nothing either. XACK follows the
event's finished outcome. The group is created at ``$`` (new entries) when missing, as
eventing-redis does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import ResponseError

from knray.broker.outcome import EventSink
from knray.errors import InvalidEventError
from knray.events import CloudEvent
from knray.events.kafka import KafkaRecord, from_kafka, is_cloudevent
from knray.manifests.base import Resource
from knray.manifests.redis_stream_source import RedisStreamSource
from knray.sources.acking import AckingConsumer
from knray.sources.kafka_security import MissingSecretError, SecretResolver

__all__ = ["EVENT_TYPE", "RedisStreamClient", "StreamEntry", "consumer", "redis_url", "to_event"]

# RedisStreamSourceEventType
EVENT_TYPE: Final = "dev.knative.sources.redisstream"
_DATA_FIELD: Final = b"data"


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One stream entry: its id and its field/value pairs, in order."""

    entry_id: str
    fields: tuple[tuple[bytes, bytes], ...]


def redis_url(source: RedisStreamSource, secrets: SecretResolver | None = None) -> str:
    """``spec.address`` as a redis URL (``host:port`` gets ``redis://``; ``useTLS`` makes it
    ``rediss://``) with the password of ``dialOptions.password`` when set."""
    address = source.spec.address.strip()
    if "://" not in address:
        address = "redis://" + address
    options = source.spec.dial_options
    if options is not None and options.use_tls and address.startswith("redis://"):
        address = "rediss://" + address.removeprefix("redis://")
    if options is not None and options.password:
        resolver = secrets or SecretResolver()
        name = str(options.password["name"])
        password = resolver.lookup(name, "password")
        if password is None:
            raise MissingSecretError(
                f"spec.dialOptions.password: secret {name!r} has no key 'password' "
                f"(environment variable {resolver.env_name(name, 'password')})"
            )
        scheme, _, rest = address.partition("://")
        address = f"{scheme}://:{password.strip()}@{rest}"
    return address


def to_event(source: RedisStreamSource, entry: StreamEntry) -> CloudEvent:
    """The event of one entry (see the module doc)."""
    overrides = source.spec.ce_overrides.extensions if source.spec.ce_overrides else {}
    headers = tuple((k.decode("utf-8", "replace"), v) for k, v in entry.fields if k != _DATA_FIELD)
    data = next((v for k, v in entry.fields if k == _DATA_FIELD), None)
    record = KafkaRecord(key=None, value=data, headers=headers)
    event: CloudEvent | None = None
    if is_cloudevent(record):
        try:
            event = from_kafka(record)
        except (InvalidEventError, ValueError):
            event = None  # an invalid CloudEvent is a plain entry
    if event is None:
        values = [part.decode("utf-8", "replace") for pair in entry.fields for part in pair]
        event = CloudEvent.from_encoded(
            {
                "specversion": "1.0",
                "id": entry.entry_id,
                "source": f"{source.spec.address}/{source.spec.stream}",
                "type": EVENT_TYPE,
                "datacontenttype": "application/json",
            },
            json.dumps(values, separators=(",", ":")).encode(),
        )
    return event.evolve(dict(overrides)) if overrides else event


class RedisStreamClient:
    """The MessageClient of a RedisStreamSource: one member of its consumer group."""

    def __init__(
        self, source: RedisStreamSource, url: str, consumer_name: str, *, claim_idle_s: float
    ) -> None:
        self.source = source
        self.url = url
        self.stream = source.spec.stream
        self.group = source.consumer_group
        self.consumer_name = consumer_name
        self.claim_idle_s = claim_idle_s
        self._redis: redis.Redis | None = None
        self._backlog_cursor: str | None = "0"  # own pending entries first, then ">"
        self._claim_cursor = "0-0"
        self._next_claim_s = 0.0

    async def connect(self) -> None:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.url)
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def fetch(self, max_messages: int, timeout_s: float) -> list[StreamEntry]:
        try:
            return await self._fetch(max_messages, timeout_s)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # The stream or group was deleted: recreate it, as eventing-redis does.
            await self.connect()
            return []

    async def _fetch(self, max_messages: int, timeout_s: float) -> list[StreamEntry]:
        client = self._require()
        if self._backlog_cursor is not None:
            reply = await client.xreadgroup(
                self.group, self.consumer_name, {self.stream: self._backlog_cursor}, max_messages
            )
            entries = _entries(reply)
            if entries:
                self._backlog_cursor = entries[-1].entry_id
                return entries
            self._backlog_cursor = None  # the backlog is read: new entries from now on
        if time.monotonic() >= self._next_claim_s:
            claimed = await self._claim(max_messages)
            if claimed:
                return claimed
        reply = await client.xreadgroup(
            self.group,
            self.consumer_name,
            {self.stream: ">"},
            max_messages,
            block=max(int(timeout_s * 1000), 1),
        )
        return _entries(reply)

    async def _claim(self, max_messages: int) -> list[StreamEntry]:
        reply = await self._require().xautoclaim(
            self.stream,
            self.group,
            self.consumer_name,
            int(self.claim_idle_s * 1000),
            start_id=self._claim_cursor,
            count=max_messages,
        )
        cursor, messages = reply[0], reply[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if self._claim_cursor == "0-0":  # a full pass: wait before the next one
            self._next_claim_s = time.monotonic() + self.claim_idle_s / 2
        return [_entry(m) for m in messages if m and m[1] is not None]

    def to_event(self, message: StreamEntry) -> CloudEvent:
        return to_event(self.source, message)

    async def ack(self, messages: Sequence[StreamEntry]) -> None:
        await self._require().xack(self.stream, self.group, *(m.entry_id for m in messages))

    async def keep(self, messages: Sequence[StreamEntry]) -> None:
        del messages  # an entry stays pending until XACKed; nothing to extend

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _require(self) -> redis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisStreamClient is not connected")
        return self._redis


def _entry(raw: Any) -> StreamEntry:
    entry_id, values = raw
    text_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return StreamEntry(text_id, tuple(values.items()))


def _entries(reply: Any) -> list[StreamEntry]:
    entries: list[StreamEntry] = []
    for _stream, items in reply or []:
        entries.extend(_entry(item) for item in items if item[1] is not None)
    return entries


def consumer(
    source: Resource, sink: EventSink, index: int, options: Mapping[str, Any]
) -> AckingConsumer[StreamEntry]:
    """The registry's factory; ``options``: ``url`` (overrides ``spec.address``),
    ``secrets``, ``claim_idle_s`` (default 60) and AckingConsumer keywords."""
    if not isinstance(source, RedisStreamSource):
        raise TypeError(f"expected a RedisStreamSource, got {source.KIND}")
    settings = dict(options)
    url = settings.pop("url", None) or redis_url(source, settings.pop("secrets", None))
    claim_idle_s = float(settings.pop("claim_idle_s", 60.0))
    client = RedisStreamClient(
        source, url, f"{source.consumer_group}-{index}", claim_idle_s=claim_idle_s
    )
    return AckingConsumer(client, sink, **settings)
