"""Kafka record -> CloudEvent, as Knative's KafkaSource does it (pure).

Reference: knative-extensions/eventing-kafka-broker, data-plane ``CloudEventDeserializer``
(a record that parses as a CloudEvent passes through; one that does not is wrapped),
``InvalidCloudEventInterceptor`` (the event built from a plain record), ``KeyDeserializer``
(the key) and ``CloudEventOverridesMutator`` (``ceOverrides``, applied to every event).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from knray.errors import InvalidEventError
from knray.events import CloudEvent
from knray.events.kafka import KafkaRecord, from_kafka, is_cloudevent
from knray.manifests.kafka_source import KafkaSource

__all__ = [
    "EVENT_TYPE",
    "KEY_TYPE_LABEL",
    "KeyType",
    "RecordMapper",
    "decode_key",
    "event_source",
    "header_extension_name",
    "kafka_time",
]

# InvalidCloudEventInterceptor.TYPE
EVENT_TYPE: Final = "dev.knative.kafka.event"
# Control-plane KafkaKeyTypeLabel (pkg/apis/sources/v1beta1/kafka_types.go): a label.
KEY_TYPE_LABEL: Final = "kafkasources.sources.knative.dev/key-type"
_HEADER_PREFIX: Final = "kafkaheader"
_CONTENT_TYPE: Final = "content-type"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class KeyType(StrEnum):
    """How the record key is read (the ``key-type`` label; KeyDeserializer)."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BYTE_ARRAY = "byte-array"


def event_source(namespace: str, name: str, topic: str) -> str:
    """``/apis/v1/namespaces/NS/kafkasources/NAME#TOPIC`` (control-plane KafkaEventSource)."""
    return f"/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}"


def header_extension_name(header: str) -> str:
    """``kafkaheader`` + the header name lower-cased with everything but [a-z0-9] removed.

    InvalidCloudEventInterceptor.replaceBadChars.
    """
    kept = (c for c in header.lower() if ("a" <= c <= "z") or ("0" <= c <= "9"))
    return _HEADER_PREFIX + "".join(kept)


def kafka_time(timestamp_ms: int) -> str:
    """The record timestamp as Java's ``ISO_OFFSET_DATE_TIME`` prints it in UTC.

    Knative sets ``time`` to ``OffsetDateTime.ofInstant(ofEpochMilli(ts), UTC)``, which the
    CloudEvents Java SDK writes with the shortest fraction (``.7Z``, ``.499Z``, none for 0).
    """
    moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    if millis:
        text += f".{millis:03d}".rstrip("0")
    return text + "Z"


def decode_key(key: bytes | None, key_type: KeyType) -> str | int | bytes | None:
    """The key extension value (KeyDeserializer): None for no key or an empty key.

    ``string`` decodes UTF-8 replacing invalid bytes with U+FFFD (Java's StringDeserializer);
    ``int`` reads 4 bytes big-endian, ``float`` 4 or 8 bytes, each falling back to ``string``
    for other lengths; ``byte-array`` keeps the bytes (sent base64-encoded).
    """
    if not key:
        return None
    if key_type is KeyType.INT and len(key) == 4:
        value: int = struct.unpack(">i", key)[0]
        return value
    if key_type is KeyType.FLOAT and len(key) in (4, 8):
        number: float = struct.unpack(">f" if len(key) == 4 else ">d", key)[0]
        # Deviation: CloudEvents has no float type; knray sends Python's repr of the number.
        return repr(number)
    if key_type is KeyType.BYTE_ARRAY:
        return bytes(key)
    return key.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class RecordMapper:
    """Turns the records of one KafkaSource into CloudEvents.

    ``kafka_extensions`` adds ``knativekafkapartition`` and ``knativekafkaoffset`` to every
    event, as recent Knative dispatchers do (CloudEventOverridesMutator); off by default so
    records that are CloudEvents pass through unchanged.
    """

    namespace: str
    name: str
    key_type: KeyType = KeyType.STRING
    overrides: Mapping[str, str] = field(default_factory=dict)
    kafka_extensions: bool = False

    @classmethod
    def for_source(cls, source: KafkaSource, *, kafka_extensions: bool = False) -> RecordMapper:
        """The mapper of a KafkaSource: its name, key-type label and ``ceOverrides``."""
        # Knative reads a label; an annotation of the same name is accepted too.
        raw_key_type = source.metadata.labels.get(KEY_TYPE_LABEL) or source.annotations.get(
            KEY_TYPE_LABEL
        )
        try:
            key_type = KeyType(raw_key_type) if raw_key_type else KeyType.STRING
        except ValueError:
            key_type = KeyType.STRING  # KeyDeserializer: an unrecognised type reads strings
        overrides = source.spec.ce_overrides.extensions if source.spec.ce_overrides else {}
        return cls(
            namespace=source.namespace,
            name=source.name,
            key_type=key_type,
            overrides=dict(overrides),
            kafka_extensions=kafka_extensions,
        )

    def to_event(
        self, topic: str, partition: int, offset: int, timestamp_ms: int, record: KafkaRecord
    ) -> CloudEvent:
        """The event of one record: the record itself when it is a valid CloudEvent."""
        event: CloudEvent | None = None
        if is_cloudevent(record):
            try:
                event = from_kafka(record)
            except (InvalidEventError, ValueError):
                event = None  # CloudEventDeserializer: an invalid CloudEvent is a plain record
        if event is None:
            event = self._plain(topic, partition, offset, timestamp_ms, record)
        extra: dict[str, Any] = {}
        if self.kafka_extensions:
            extra["knativekafkapartition"] = partition
            extra["knativekafkaoffset"] = str(offset)  # int64 does not fit an Integer
        extra.update(self.overrides)
        return event.evolve(extra) if extra else event

    def _plain(
        self, topic: str, partition: int, offset: int, timestamp_ms: int, record: KafkaRecord
    ) -> CloudEvent:
        # InvalidCloudEventInterceptor.validRecord
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"partition:{partition}/offset:{offset}",
            "time": kafka_time(timestamp_ms),
            "type": EVENT_TYPE,
            "source": event_source(self.namespace, self.name, topic),
            "subject": f"partition:{partition}#{offset}",
        }
        key = decode_key(record.key, self.key_type)
        if key is not None:
            attributes["partitionkey"] = key
            attributes["key"] = key
        content_type: bytes | None = None
        for header, value in record.headers:
            if header.lower() == _CONTENT_TYPE:
                content_type = value  # carried as datacontenttype, not as an extension
                continue
            # Deviation: Java fails on a header without value; knray sends an empty string.
            attributes[header_extension_name(header)] = (value or b"").decode(
                "utf-8", errors="replace"
            )
        if content_type:
            attributes["datacontenttype"] = content_type.decode("utf-8", errors="replace").lower()
        return CloudEvent.from_encoded(attributes, record.value)
